;; callscope's built-in demo guest.
;;
;; World:
;;   import callscope-demo:app/upstream { fetch: async func(url: string) -> string }
;;   export callscope-demo:app/handler  { handle: async func(id: u32, url: string) -> string }
;;
;; `handle` is a stackless (callback) async lift, like a componentize-py
;; guest. It answers each request with the body its upstream `fetch` returned.
;;
;; The mode is the constant $MODE (substituted for @MODE@ at build time):
;;   0 event-loop    one "event loop" for all requests: `handle` only queues
;;                   the request and yields; the callback of ANY task first
;;                   drains the queue, issuing `fetch` for every queued
;;                   request, so under concurrency request B's import runs on
;;                   task A (misattributed by async-call-stack attribution).
;;   1 backpressure  the same code, plus backpressure.inc on entry and
;;                   backpressure.dec just before EXIT: one request at a time.
;;   2 well-behaved  `handle` issues its own fetch at once, on its own task.
;;   3 set-task      the event loop again, run by one explicit thread (made by
;;                   thread.new-indirect) that calls thread.set-task to join
;;                   the task of the request it works for before each fetch:
;;                   every import is made on the right task. (The lines
;;                   between @IF-SET-TASK and @END are in this mode only.)
;;
;; Memory layout (linear memory of $Alloc, shared by $Core):
;;   [1024, 9216)   request table: 256 slots of 32 bytes
;;                    +0 id  +4 url ptr  +8 url len  +12 waitable set
;;                    +16 subtask (0: none)  +20 state
;;                    +24 response ptr  +28 response len  (the async lower's
;;                    result area: the runtime writes the string there)
;;   [9216, 10240)  run queue: ring of 256 slot indices
;;   [10240, 10368) allocator free-list heads, one per size class
;;   [10368, 11392) set-task mode: each slot's thread index (its task's
;;                  implicit thread, the thread.set-task target)
;;   [16384, ...)   heap (size-classed blocks; memory grows on demand)
;; Request states: 0 free, 1 queued, 2 fetching, 3 done.
(component
  (import "callscope-demo:app/upstream" (instance $upstream
    (export "fetch" (func async (param "url" string) (result string)))
  ))
  (alias export $upstream "fetch" (func $fetch))

  ;; Memory and a small allocator: power-of-two size classes (16 << k bytes,
  ;; 8-byte header holding k), one free list per class, bump allocation with
  ;; memory.grow when a class list is empty. Freed blocks are reused, so
  ;; memory stays bounded by the peak of live requests.
  (core module $Alloc
    (memory (export "mem") 1)
    (global $bump (mut i32) (i32.const 16384))
    (global $FREE_LISTS i32 (i32.const 10240))

    (func $class (param $size i32) (result i32)
      (local $k i32)
      (local.set $size (i32.add (local.get $size) (i32.const 8)))
      (block $done
        (loop $next
          (br_if $done (i32.ge_u (i32.shl (i32.const 16) (local.get $k)) (local.get $size)))
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (br_if $next (i32.lt_u (local.get $k) (i32.const 26)))
          unreachable))
      (local.get $k))

    (func $alloc (export "alloc") (param $size i32) (result i32)
      (local $k i32) (local $head i32) (local $block i32) (local $end i32) (local $need i32)
      (local.set $k (call $class (local.get $size)))
      (local.set $head (i32.add (global.get $FREE_LISTS) (i32.shl (local.get $k) (i32.const 2))))
      (local.set $block (i32.load (local.get $head)))
      (if (local.get $block)
        (then
          (i32.store (local.get $head) (i32.load offset=4 (local.get $block))))
        (else
          (local.set $block (global.get $bump))
          (local.set $end (i32.add (local.get $block) (i32.shl (i32.const 16) (local.get $k))))
          (local.set $need
            (i32.sub (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16))
                     (memory.size)))
          (if (i32.gt_s (local.get $need) (i32.const 0))
            (then
              (if (i32.eq (memory.grow (local.get $need)) (i32.const -1))
                (then unreachable))))
          (global.set $bump (local.get $end))))
      (i32.store (local.get $block) (local.get $k))
      (i32.add (local.get $block) (i32.const 8)))

    (func $free (export "free") (param $ptr i32)
      (local $block i32) (local $head i32)
      (if (i32.eqz (local.get $ptr)) (then (return)))
      (local.set $block (i32.sub (local.get $ptr) (i32.const 8)))
      (local.set $head
        (i32.add (global.get $FREE_LISTS) (i32.shl (i32.load (local.get $block)) (i32.const 2))))
      (i32.store offset=4 (local.get $block) (i32.load (local.get $head)))
      (i32.store (local.get $head) (local.get $block)))

    ;; blocks are 16-aligned and payloads 8-aligned: enough for any align
    (func (export "realloc") (param $old i32) (param $old-size i32) (param $align i32) (param $new-size i32) (result i32)
      (local $new i32)
      (local.set $new (call $alloc (local.get $new-size)))
      (if (local.get $old)
        (then
          (memory.copy (local.get $new) (local.get $old)
            (select (local.get $old-size) (local.get $new-size)
                    (i32.lt_u (local.get $old-size) (local.get $new-size))))
          (call $free (local.get $old))))
      (local.get $new))
  )
  (core instance $alloc (instantiate $Alloc))
  ;; @IF-SET-TASK
  (core module $Table (table (export "t") 1 funcref))
  (core instance $table (instantiate $Table))
  (alias core export $table "t" (core table $loop-table))
  (core type $loop-ty (func (param i32)))
  (core func $thread.new-indirect (canon thread.new-indirect $loop-ty (core table $loop-table)))
  (canon thread.index (core func $thread.index))
  (canon thread.set-task (core func $thread.set-task))
  (canon thread.resume-later (core func $thread.resume-later))
  (canon thread.suspend (core func $thread.suspend))
  ;; @END

  (core module $Core
    (import "" "mem" (memory 1))
    (import "" "free" (func $free (param i32)))
    (import "" "task.return" (func $task.return (param i32 i32)))
    (import "" "context.get" (func $context.get (result i32)))
    (import "" "context.set" (func $context.set (param i32)))
    (import "" "waitable-set.new" (func $waitable-set.new (result i32)))
    (import "" "waitable-set.drop" (func $waitable-set.drop (param i32)))
    (import "" "waitable.join" (func $waitable.join (param i32 i32)))
    (import "" "subtask.drop" (func $subtask.drop (param i32)))
    (import "" "backpressure.inc" (func $backpressure.inc))
    (import "" "backpressure.dec" (func $backpressure.dec))
    ;; async lower of fetch: (url ptr, url len, result ptr) -> status | subtask << 4
    (import "" "fetch" (func $fetch (param i32 i32 i32) (result i32)))
    ;; @IF-SET-TASK
    (import "" "thread.new-indirect" (func $thread.new-indirect (param i32 i32) (result i32)))
    (import "" "thread.index" (func $thread.index (result i32)))
    (import "" "thread.set-task" (func $thread.set-task (param i32)))
    (import "" "thread.resume-later" (func $thread.resume-later (param i32)))
    (import "" "thread.suspend" (func $thread.suspend (result i32)))
    (import "" "t" (table 1 funcref))
    (global $THREADS i32 (i32.const 10368))
    (global $have-loop (mut i32) (i32.const 0))
    (global $loop (mut i32) (i32.const 0))
    (global $loop-idle (mut i32) (i32.const 0))
    (global $in-loop (mut i32) (i32.const 0))
    (elem (i32.const 0) func $loop-main)

    ;; the event loop's thread: drain the queue, suspend until woken
    (func $loop-main (param i32)
      (loop $forever
        (global.set $in-loop (i32.const 1))
        (call $run-loop)
        (global.set $in-loop (i32.const 0))
        (global.set $loop-idle (i32.const 1))
        (drop (call $thread.suspend))
        (br $forever)))

    ;; make the loop thread (on the first request) or wake it when it sleeps
    (func $wake-loop
      (if (i32.eqz (global.get $have-loop))
        (then
          (global.set $loop (call $thread.new-indirect (i32.const 0) (i32.const 0)))
          (global.set $have-loop (i32.const 1))
          (call $thread.resume-later (global.get $loop))
          (return)))
      (if (global.get $loop-idle)
        (then
          (global.set $loop-idle (i32.const 0))
          (call $thread.resume-later (global.get $loop)))))
    ;; @END

    (global $MODE i32 (i32.const @MODE@))
    (global $TABLE i32 (i32.const 1024))
    (global $QUEUE i32 (i32.const 9216))
    (global $SLOTS i32 (i32.const 256))
    (global $next-slot (mut i32) (i32.const 0))
    (global $q-head (mut i32) (i32.const 0))
    (global $q-tail (mut i32) (i32.const 0))
    (global $live (mut i32) (i32.const 0))

    (func $slot (param $s i32) (result i32)
      (i32.add (global.get $TABLE) (i32.shl (local.get $s) (i32.const 5))))

    ;; a free slot, searching round-robin from the last one handed out
    (func $alloc-slot (result i32)
      (local $i i32) (local $s i32)
      (block $none
        (loop $next
          (br_if $none (i32.ge_u (local.get $i) (global.get $SLOTS)))
          (local.set $s (i32.and (i32.add (global.get $next-slot) (local.get $i)) (i32.const 255)))
          (if (i32.eqz (i32.load offset=20 (call $slot (local.get $s))))
            (then
              (global.set $next-slot (i32.and (i32.add (local.get $s) (i32.const 1)) (i32.const 255)))
              (return (local.get $s))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $next)))
      unreachable)

    ;; issue the upstream fetch of request $s on whatever task is current
    (func $issue (param $s i32)
      (local $a i32) (local $ret i32)
      (local.set $a (call $slot (local.get $s)))
      ;; @IF-SET-TASK
      ;; join the task of request $s: the fetch is made on its behalf
      (call $thread.set-task (i32.load (i32.add (global.get $THREADS) (i32.shl (local.get $s) (i32.const 2)))))
      ;; @END
      (local.set $ret (call $fetch (i32.load offset=4 (local.get $a)) (i32.load offset=8 (local.get $a))
                                   (i32.add (local.get $a) (i32.const 24))))
      (if (i32.eq (i32.and (local.get $ret) (i32.const 15)) (i32.const 2 (; RETURNED ;)))
        (then
          (i32.store offset=20 (local.get $a) (i32.const 3 (; done ;))))
        (else
          (i32.store offset=16 (local.get $a) (i32.shr_u (local.get $ret) (i32.const 4)))
          (i32.store offset=20 (local.get $a) (i32.const 2 (; fetching ;)))
          ;; the subtask goes to its OWN request's waitable set
          (call $waitable.join (i32.shr_u (local.get $ret) (i32.const 4)) (i32.load offset=12 (local.get $a))))))

    ;; the shared event loop: fetch for every queued request
    (func $run-loop
      (local $s i32)
      ;; @IF-SET-TASK
      ;; only the loop thread runs the loop (not the tasks' callbacks)
      (if (i32.eqz (global.get $in-loop)) (then (return)))
      ;; @END
      (block $empty
        (loop $next
          (br_if $empty (i32.eq (global.get $q-head) (global.get $q-tail)))
          (local.set $s (i32.load (i32.add (global.get $QUEUE)
                                           (i32.shl (i32.and (global.get $q-head) (i32.const 255)) (i32.const 2)))))
          (global.set $q-head (i32.add (global.get $q-head) (i32.const 1)))
          (call $issue (local.get $s))
          (br $next))))

    (func $enqueue (param $s i32)
      (i32.store (i32.add (global.get $QUEUE)
                          (i32.shl (i32.and (global.get $q-tail) (i32.const 255)) (i32.const 2)))
                 (local.get $s))
      (global.set $q-tail (i32.add (global.get $q-tail) (i32.const 1))))

    ;; return the response, release the request, EXIT
    (func $finish (param $s i32) (result i32)
      (local $a i32)
      (local.set $a (call $slot (local.get $s)))
      (call $task.return (i32.load offset=24 (local.get $a)) (i32.load offset=28 (local.get $a)))
      (call $free (i32.load offset=4 (local.get $a)))
      (call $free (i32.load offset=24 (local.get $a)))
      (call $waitable-set.drop (i32.load offset=12 (local.get $a)))
      (i32.store offset=20 (local.get $a) (i32.const 0 (; free ;)))
      ;; table full: new requests were held back (see $handle)
      (if (i32.eq (global.get $live) (global.get $SLOTS))
        (then (call $backpressure.dec)))
      (global.set $live (i32.sub (global.get $live) (i32.const 1)))
      (if (i32.eq (global.get $MODE) (i32.const 1))
        (then (call $backpressure.dec)))
      (i32.const 0 (; EXIT ;)))

    ;; what the task of request $s does with an event, after any loop run
    (func $step (param $s i32) (param $event i32) (param $index i32) (param $payload i32) (result i32)
      (local $a i32)
      (local.set $a (call $slot (local.get $s)))
      (if (i32.and (i32.eq (local.get $event) (i32.const 1 (; SUBTASK ;)))
                   (i32.eq (local.get $index) (i32.load offset=16 (local.get $a))))
        (then
          (if (i32.eq (local.get $payload) (i32.const 2 (; RETURNED ;)))
            (then
              (call $subtask.drop (local.get $index))
              (i32.store offset=16 (local.get $a) (i32.const 0))
              (i32.store offset=20 (local.get $a) (i32.const 3 (; done ;)))))))
      (if (i32.eq (i32.load offset=20 (local.get $a)) (i32.const 3 (; done ;)))
        (then (return (call $finish (local.get $s)))))
      (if (i32.eq (i32.load offset=20 (local.get $a)) (i32.const 2 (; fetching ;)))
        (then (return (i32.or (i32.const 2 (; WAIT ;))
                              (i32.shl (i32.load offset=12 (local.get $a)) (i32.const 4))))))
      (i32.const 1 (; YIELD ;)))

    (func (export "handle") (param $id i32) (param $url-ptr i32) (param $url-len i32) (result i32)
      (local $s i32) (local $a i32)
      (if (i32.eq (global.get $MODE) (i32.const 1))
        (then (call $backpressure.inc)))
      (local.set $s (call $alloc-slot))
      (local.set $a (call $slot (local.get $s)))
      (i32.store (local.get $a) (local.get $id))
      (i32.store offset=4 (local.get $a) (local.get $url-ptr))
      (i32.store offset=8 (local.get $a) (local.get $url-len))
      (i32.store offset=12 (local.get $a) (call $waitable-set.new))
      (i32.store offset=16 (local.get $a) (i32.const 0))
      (i32.store offset=20 (local.get $a) (i32.const 1 (; queued ;)))
      (i64.store offset=24 (local.get $a) (i64.const 0))
      (call $context.set (local.get $s))
      (global.set $live (i32.add (global.get $live) (i32.const 1)))
      ;; every slot taken: hold back new requests until one finishes
      (if (i32.eq (global.get $live) (global.get $SLOTS))
        (then (call $backpressure.inc)))
      (if (i32.eq (global.get $MODE) (i32.const 2))
        (then
          (call $issue (local.get $s))
          (return (call $step (local.get $s) (i32.const 0) (i32.const 0) (i32.const 0)))))
      ;; the event loop will run "soon": on the next callback of any task
      (call $enqueue (local.get $s))
      ;; @IF-SET-TASK
      ;; (or on the loop thread, which the callbacks leave the queue to)
      (i32.store (i32.add (global.get $THREADS) (i32.shl (local.get $s) (i32.const 2))) (call $thread.index))
      (call $wake-loop)
      ;; @END
      (i32.const 1 (; YIELD ;)))

    (func (export "cb") (param $event i32) (param $index i32) (param $payload i32) (result i32)
      (if (i32.ne (global.get $MODE) (i32.const 2))
        (then (call $run-loop)))
      (call $step (call $context.get) (local.get $event) (local.get $index) (local.get $payload)))
  )

  (canon task.return (result string) (memory (core memory $alloc "mem")) (core func $task.return))
  (canon context.get i32 0 (core func $context.get))
  (canon context.set i32 0 (core func $context.set))
  (canon waitable-set.new (core func $waitable-set.new))
  (canon waitable-set.drop (core func $waitable-set.drop))
  (canon waitable.join (core func $waitable.join))
  (canon subtask.drop (core func $subtask.drop))
  (canon backpressure.inc (core func $backpressure.inc))
  (canon backpressure.dec (core func $backpressure.dec))
  (canon lower (func $fetch) async (memory (core memory $alloc "mem")) (realloc (core func $alloc "realloc"))
    (core func $fetch-lowered))

  (core instance $core (instantiate $Core (with "" (instance
    (export "mem" (memory $alloc "mem"))
    (export "free" (func $alloc "free"))
    (export "task.return" (func $task.return))
    (export "context.get" (func $context.get))
    (export "context.set" (func $context.set))
    (export "waitable-set.new" (func $waitable-set.new))
    (export "waitable-set.drop" (func $waitable-set.drop))
    (export "waitable.join" (func $waitable.join))
    (export "subtask.drop" (func $subtask.drop))
    (export "backpressure.inc" (func $backpressure.inc))
    (export "backpressure.dec" (func $backpressure.dec))
    (export "fetch" (func $fetch-lowered))
    ;; @IF-SET-TASK
    (export "thread.new-indirect" (func $thread.new-indirect))
    (export "thread.index" (func $thread.index))
    (export "thread.set-task" (func $thread.set-task))
    (export "thread.resume-later" (func $thread.resume-later))
    (export "thread.suspend" (func $thread.suspend))
    (export "t" (table $loop-table))
    ;; @END
  ))))

  (func $handle async (param "id" u32) (param "url" string) (result string)
    (canon lift (core func $core "handle") async
      (memory (core memory $alloc "mem")) (realloc (core func $alloc "realloc"))
      (callback (core func $core "cb"))))

  (instance $handler (export "handle" (func $handle)))
  (export "callscope-demo:app/handler" (instance $handler))
)
