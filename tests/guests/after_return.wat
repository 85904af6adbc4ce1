;; Work after the root returned, through state shared by all calls: `run(x)`
;; stores x in a global, returns x (task.return) at once and yields; only
;; then, in its callback, does it call the import `log` with the global.
;; Calls overlapping on one instance log the latest x, not their own.
(component
  (import "log" (func $log (param "x" u32)))
  (core module $M
    (import "" "task.return" (func $task.return (param i32)))
    (import "" "log" (func $log (param i32)))
    (global $last (mut i32) (i32.const 0))
    (func (export "run") (param i32) (result i32)
      (global.set $last (local.get 0))
      (call $task.return (local.get 0))
      (i32.const 1))  ;; YIELD
    (func (export "cb") (param i32 i32 i32) (result i32)
      (call $log (global.get $last))
      (i32.const 0)))  ;; EXIT
  (core func $task.return (canon task.return (result u32)))
  (core func $log (canon lower (func $log)))
  (core instance $m (instantiate $M (with "" (instance (export "task.return" (func $task.return))
                                                       (export "log" (func $log))))))
  (func (export "run") async (param "x" u32) (result u32)
    (canon lift (core func $m "run") async (callback (core func $m "cb"))))
)
