;; A test-only normalizer written by hand (the canonical ABI of
;; `tickstock:plugins/normalize@1.1.0`), for what Rust guests cannot do:
;; two linear memories and a table that grows. The first byte of the frame
;; chooses:
;;   `m`: grows each of its two memories to about 40 MiB (80 MiB in all);
;;   `t`: grows its table by 100,000 entries at a time, for ever;
;;   anything else: returns no tick.
;; A refused `memory.grow` / `table.grow` (-1) traps with `unreachable`.
(module
  (memory (export "memory") 1)
  (memory $second 1)
  (table $entries 1 funcref)
  (global $heap (mut i32) (i32.const 1024))

  ;; info: name "budget" at 16, version "0.0.1" at 32, the record at 64.
  (data (i32.const 16) "budget")
  (data (i32.const 32) "0.0.1")
  (data (i32.const 64) "\10\00\00\00\06\00\00\00\20\00\00\00\05\00\00\00")
  ;; An empty `normalized` (two empty lists) at 128: memory starts zeroed.

  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $at i32)
    (local.set $at (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get 3)))
    (local.get $at))

  (func (export "tickstock:plugins/normalize@1.1.0#info") (result i32)
    (i32.const 64))

  (func (export "tickstock:plugins/normalize@1.1.0#normalize-frame")
    (param $frame i32) (param $len i32) (result i32)
    (if (i32.eq (i32.load8_u (local.get $frame)) (i32.const 109)) ;; 'm'
      (then
        (if (i32.eq (memory.grow (i32.const 640)) (i32.const -1)) (then unreachable))
        (if (i32.eq (memory.grow $second (i32.const 640)) (i32.const -1)) (then unreachable))))
    (if (i32.eq (i32.load8_u (local.get $frame)) (i32.const 116)) ;; 't'
      (then
        (loop $grow
          (if (i32.eq (table.grow $entries (ref.null func) (i32.const 100000)) (i32.const -1))
            (then unreachable))
          (br $grow))))
    (i32.const 128))
)
