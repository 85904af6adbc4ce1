"""Ping-pong (bench/run.py row c) for profilers: N subtasks, not recording
(or recording, with --record).

    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.N python bench/callgrind_pingpong.py N [--record]
    python bench/callgrind_pingpong.py N --cprofile

Instructions a subtask: (total at 2N - total at N) / N (start-up and compilation cancel).
"""
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import run as bench  # noqa: E402


def main() -> None:
    n = int(sys.argv[1])
    record = "--record" in sys.argv[2:]
    if "--cprofile" in sys.argv[2:]:
        import cProfile
        import pstats
        prof = cProfile.Profile()
        prof.enable()
        r, dt = bench.callscope_call(bench.PINGPONG_WAT, "run", n, record)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(40)
    else:
        r, dt = bench.callscope_call(bench.PINGPONG_WAT, "run", n, record)
    assert r == bench.expected_pingpong(n), r
    print(f"{n} subtasks: {dt / n * 1e6:.2f} us each")


if __name__ == "__main__":
    main()
