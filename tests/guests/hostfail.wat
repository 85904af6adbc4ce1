;; A guest that hands the host sizes of its choosing and calls a user import
;; (tests/test_hostfail.py): get-random-bytes(len) and a plain `f(n) -> u32`.
(component
  (import "wasi:random/random@0.2.3" (instance $rand
    (export "get-random-bytes" (func (param "len" u64) (result (list u8))))))
  (import "test:host/api" (instance $api
    (export "f" (func (param "n" u32) (result u32)))))
  (core module $Mem
    (memory (export "mem") 1)
    (global $next (mut i32) (i32.const 1024))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p (global.get $next))
      (global.set $next (i32.add (global.get $next) (local.get 3)))
      (local.get $p)))
  (core instance $mem (instantiate $Mem))
  (core func $grb (canon lower (func $rand "get-random-bytes")
    (memory (core memory $mem "mem")) (realloc (core func $mem "realloc"))))
  (core func $f (canon lower (func $api "f")))
  (core module $M
    (import "r" "grb" (func $grb (param i64 i32)))
    (import "a" "f" (func $f (param i32) (result i32)))
    (func (export "rand") (param i64) (result i32)
      (call $grb (local.get 0) (i32.const 16))
      (i32.const 0))
    (func (export "callf") (param i32) (result i32) (call $f (local.get 0))))
  (core instance $m (instantiate $M
    (with "r" (instance (export "grb" (func $grb))))
    (with "a" (instance (export "f" (func $f))))))
  (func (export "rand") (param "n" u64) (result u32) (canon lift (core func $m "rand")))
  (func (export "callf") (param "n" u32) (result u32) (canon lift (core func $m "callf")))
)
