"""Pipeline schedules from Python: built schedules as text, the deadlock check
with its simulated makespan and bubble, and per-rank parsing."""
import pytest

from alpa_torch import _C

ONE_F_ONE_B_S2_B4 = (
    "rank 0: F0 SEND_F0 F1 SEND_F1 RECV_B0 B0 F2 SEND_F2 RECV_B1 B1 F3 SEND_F3 RECV_B2 B2 RECV_B3 B3\n"
    "rank 1: RECV_F0 F0 B0 SEND_B0 RECV_F1 F1 B1 SEND_B1 RECV_F2 F2 B2 SEND_B2 RECV_F3 F3 B3 SEND_B3\n")


def test_built_schedule_text():
    assert _C.schedule("1f1b", 2, 4) == ONE_F_ONE_B_S2_B4
    assert _C.schedule("gpipe", 1, 2) == "rank 0: F0 F1 B0 B1\n"
    text = _C.schedule("interleaved_1f1b", 2, 4, num_virtual=2)
    assert text.startswith("rank 0: 0F0 0SEND_F0 0F1 0SEND_F1 2RECV_F0 2F0 ")
    assert text.count("\n") == 2


@pytest.mark.parametrize("kind", ["gpipe", "1f1b"])
@pytest.mark.parametrize("stages,micro_batches", [(1, 1), (2, 4), (4, 4), (5, 8)])
def test_bubble_matches_theory(kind, stages, micro_batches):
    for backward_cost in (1.0, 2.0):
        result = _C.check_schedule(_C.schedule(kind, stages, micro_batches),
                                   forward_cost=1.0, backward_cost=backward_cost)
        assert result["bubble_fraction"] == pytest.approx(
            (stages - 1) / (micro_batches + stages - 1), abs=1e-12)
        assert result["makespan"] == pytest.approx((micro_batches + stages - 1) * (1 + backward_cost))
        assert result["busy"] == [micro_batches * (1 + backward_cost)] * stages
        assert result["num_ranks"] == stages


def test_check_reports_memory_and_defaults():
    result = _C.check_schedule(ONE_F_ONE_B_S2_B4)
    assert result["makespan"] == 15  # (B+S-1)·(f+b) with f=1, b=2
    assert result["bubble_fraction"] == pytest.approx(0.2)
    assert result["idle"] == [3, 3]
    assert result["max_in_flight"] == [2, 1]
    assert _C.check_schedule(_C.schedule("gpipe", 2, 4))["max_in_flight"] == [4, 4]


def test_deadlock_raises_value_error_with_grid():
    with pytest.raises(ValueError) as info:
        _C.check_schedule("rank 0: F0 RECV_B0 SEND_F0 B0\nrank 1: RECV_F0 F0 B0 SEND_B0\n")
    message = str(info.value)
    assert "deadlock: ranks 0, 1 wait forever" in message
    assert "step  rank 0     rank 1\n0     F0         [RECV_F0]\n1     [RECV_B0]  F0\n" in message


def test_rule_and_parse_errors():
    with pytest.raises(ValueError, match=r"missing 1 action: SEND_B0 \(stage 1, micro-batch 0\) on rank 1"):
        _C.check_schedule("rank 0: F0 SEND_F0 RECV_B0 B0\nrank 1: RECV_F0 F0 B0\n")
    with pytest.raises(ValueError, match=r"line 1, rank 0, step 1: 'G0': unknown action kind 'G'"):
        _C.parse_schedule("rank 0: F0 G0\n")
    with pytest.raises(ValueError, match="must be a multiple of the number of ranks"):
        _C.schedule("interleaved_1f1b", 4, 6, num_virtual=2)
    with pytest.raises(ValueError, match="unknown schedule 'zb'"):
        _C.schedule("zb", 2, 2)


def test_parse_schedule_per_rank():
    assert _C.parse_schedule("rank 0: F0 SEND_F0 RECV_B0 B0\nrank 1: RECV_F0 F0 B0 SEND_B0\n") == [
        ["F0", "SEND_F0", "RECV_B0", "B0"], ["RECV_F0", "F0", "B0", "SEND_B0"]]
    ranks = _C.parse_schedule(_C.schedule("interleaved_1f1b", 2, 2, num_virtual=2))
    assert ranks[1][:4] == ["1RECV_F0", "1F0", "1SEND_F0", "1RECV_F1"]
    assert _C.check_schedule(_C.schedule("interleaved_1f1b", 2, 2, num_virtual=2))["num_stages"] == 4
