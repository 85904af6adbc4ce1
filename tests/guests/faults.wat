;; Small guests for callscope run's fault handling: a trap, a deadlock, a
;; guest stuck in wasm, and a plain sync export.
(component
  (core module $M
    (import "" "waitable-set.new" (func $waitable-set.new (result i32)))
    (memory (export "mem") 1)
    (func (export "trap") (result i32) unreachable)
    (func (export "spin") (result i32) (loop $l (br $l)) (i32.const 0))
    (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
    (func (export "stuck") (result i32)
      ;; WAIT on a new, empty waitable set: nothing will ever wake it
      (i32.or (i32.const 2) (i32.shl (call $waitable-set.new) (i32.const 4))))
    (func (export "stuck-cb") (param i32 i32 i32) (result i32) unreachable)
  )
  (core func $waitable-set.new (canon waitable-set.new))
  (core instance $m (instantiate $M (with "" (instance (export "waitable-set.new" (func $waitable-set.new))))))
  (func (export "trap") (result u32) (canon lift (core func $m "trap")))
  (func (export "spin") (result u32) (canon lift (core func $m "spin")))
  (func (export "add") (param "a" u32) (param "b" u32) (result u32) (canon lift (core func $m "add")))
  (func (export "stuck") async (result u32)
    (canon lift (core func $m "stuck") async (callback (core func $m "stuck-cb"))))
)
