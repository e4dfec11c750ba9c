;; Hostile component with eight linear memories: a main core module (whose memory the canonical
;; ABI uses) and seven "grower" core instances, each with a memory of its own. Its mapping
;; function `call` grows every grower's memory by the same number of 64 KiB pages: 1000 pages
;; (62.5 MiB, under a 64 MiB limit for each memory alone, 437.5 MiB together) unless the
;; function's name is five bytes long ("small": 100 pages each, 43.75 MiB together). It returns
;; "1" when every growth succeeded. `functions` returns no names.
;;
;; Not a Rust crate: the test turns this text into a component with the `wat` crate
;; (tests/all/plugin.rs, `several_memories_count_against_one_memory_limit`).
(component
  (type $types-type
    (instance
      (type (variant (case "invalid-input" string) (case "denied" string) (case "upstream" string) (case "internal" string)))
      (export "plugin-error" (type (eq 0)))))
  (import "switchyard:plugin/types@0.1.0" (instance $types (type $types-type)))
  (alias export $types "plugin-error" (type $plugin-error))

  (core module $grower
    (memory (export "memory") 1)
    (func (export "grow") (param i32) (result i32)
      (memory.grow (local.get 0))))

  (core module $main
    (import "g" "g1" (func $g1 (param i32) (result i32)))
    (import "g" "g2" (func $g2 (param i32) (result i32)))
    (import "g" "g3" (func $g3 (param i32) (result i32)))
    (import "g" "g4" (func $g4 (param i32) (result i32)))
    (import "g" "g5" (func $g5 (param i32) (result i32)))
    (import "g" "g6" (func $g6 (param i32) (result i32)))
    (import "g" "g7" (func $g7 (param i32) (result i32)))
    (memory (export "memory") 1)
    (global $bump (mut i32) (i32.const 1024))
    ;; Bump allocator for the arguments the host passes in (a few bytes per call).
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p
        (i32.and
          (i32.add (global.get $bump) (i32.sub (local.get 2) (i32.const 1)))
          (i32.sub (i32.const 0) (local.get 2))))
      (global.set $bump (i32.add (local.get $p) (local.get 3)))
      (if (i32.gt_u (global.get $bump) (i32.const 65536)) (then unreachable))
      (local.get $p))
    ;; functions() -> list<string>: an empty list at address 16.
    (func (export "functions") (result i32)
      (i32.store (i32.const 16) (i32.const 0))
      (i32.store (i32.const 20) (i32.const 0))
      (i32.const 16))
    ;; call(name, args) -> result<string, plugin-error>: ok("1") at address 32.
    (func (export "call") (param $name i32) (param $len i32) (param i32 i32) (result i32)
      (local $pages i32)
      (local.set $pages (select (i32.const 100) (i32.const 1000) (i32.eq (local.get $len) (i32.const 5))))
      (if (i32.lt_s (call $g1 (local.get $pages)) (i32.const 0)) (then unreachable))
      (if (i32.lt_s (call $g2 (local.get $pages)) (i32.const 0)) (then unreachable))
      (if (i32.lt_s (call $g3 (local.get $pages)) (i32.const 0)) (then unreachable))
      (if (i32.lt_s (call $g4 (local.get $pages)) (i32.const 0)) (then unreachable))
      (if (i32.lt_s (call $g5 (local.get $pages)) (i32.const 0)) (then unreachable))
      (if (i32.lt_s (call $g6 (local.get $pages)) (i32.const 0)) (then unreachable))
      (if (i32.lt_s (call $g7 (local.get $pages)) (i32.const 0)) (then unreachable))
      (i32.store8 (i32.const 100) (i32.const 49))
      (i32.store8 (i32.const 32) (i32.const 0))
      (i32.store (i32.const 36) (i32.const 100))
      (i32.store (i32.const 40) (i32.const 1))
      (i32.const 32)))

  (core instance $i1 (instantiate $grower))
  (core instance $i2 (instantiate $grower))
  (core instance $i3 (instantiate $grower))
  (core instance $i4 (instantiate $grower))
  (core instance $i5 (instantiate $grower))
  (core instance $i6 (instantiate $grower))
  (core instance $i7 (instantiate $grower))
  (alias core export $i1 "grow" (core func $grow1))
  (alias core export $i2 "grow" (core func $grow2))
  (alias core export $i3 "grow" (core func $grow3))
  (alias core export $i4 "grow" (core func $grow4))
  (alias core export $i5 "grow" (core func $grow5))
  (alias core export $i6 "grow" (core func $grow6))
  (alias core export $i7 "grow" (core func $grow7))
  (core instance $growers
    (export "g1" (func $grow1))
    (export "g2" (func $grow2))
    (export "g3" (func $grow3))
    (export "g4" (func $grow4))
    (export "g5" (func $grow5))
    (export "g6" (func $grow6))
    (export "g7" (func $grow7)))
  (core instance $m (instantiate $main (with "g" (instance $growers))))
  (alias core export $m "memory" (core memory $memory))
  (alias core export $m "realloc" (core func $realloc))
  (alias core export $m "functions" (core func $functions-core))
  (alias core export $m "call" (core func $call-core))

  (type $functions-type (func (result (list string))))
  (type $call-result (result string (error $plugin-error)))
  (type $call-type (func (param "name" string) (param "args" (list string)) (result $call-result)))
  (func $functions (type $functions-type)
    (canon lift (core func $functions-core) (memory $memory) (realloc $realloc) string-encoding=utf8))
  (func $call (type $call-type)
    (canon lift (core func $call-core) (memory $memory) (realloc $realloc) string-encoding=utf8))

  ;; The interface instance, as wit-component shapes it: a component that re-exports the
  ;; functions with the interface's named types.
  (component $mapping-shim
    (type $err' (variant (case "invalid-input" string) (case "denied" string) (case "upstream" string) (case "internal" string)))
    (import "import-type-plugin-error" (type $err (eq $err')))
    (type $ft (func (result (list string))))
    (import "import-func-functions" (func $f (type $ft)))
    (type $res (result string (error $err)))
    (type $ct (func (param "name" string) (param "args" (list string)) (result $res)))
    (import "import-func-call" (func $c (type $ct)))
    (export $err-out "plugin-error" (type $err))
    (type $res-out (result string (error $err-out)))
    (type $ct-out (func (param "name" string) (param "args" (list string)) (result $res-out)))
    (export "functions" (func $f))
    (export "call" (func $c) (func (type $ct-out))))
  (instance $mapping (instantiate $mapping-shim
    (with "import-type-plugin-error" (type $plugin-error))
    (with "import-func-functions" (func $functions))
    (with "import-func-call" (func $call))))
  (export "switchyard:plugin/mapping@0.1.0" (instance $mapping)))
