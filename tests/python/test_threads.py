"""Planning from several threads at once (issue 11 #3): CBC's solver entry
keeps process-wide state, so every CBC solve in the process runs under one
lock, and CBC itself prints nothing."""
import threading

import alpa_torch

from conftest import mlp_model

TRIALS = 200


def test_two_threads_planning_at_once(capfd):
    model, args = mlp_model()
    graph = alpa_torch.capture(model, args)
    first = alpa_torch.plan(graph, mesh_shape=(2, 2))
    # The ILP must reach CBC (not be settled by presolve alone).
    assert first.solver["num_ilp_variables"] > 0, first.solver
    expected = first.param_specs
    capfd.readouterr()  # what capture and the first plan printed is not CBC's

    failures = []
    for trial in range(TRIALS):
        barrier = threading.Barrier(2)

        def worker():
            try:
                barrier.wait()
                plan = alpa_torch.plan(graph, mesh_shape=(2, 2))
                if plan.param_specs != expected:
                    failures.append((trial, "a different plan", plan.param_specs))
            except Exception as e:  # noqa: BLE001 -- every failure is the result
                failures.append((trial, type(e).__name__, str(e)))

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    out, err = capfd.readouterr()
    assert failures == [], f"{len(failures)} of {2 * TRIALS} plans failed, first: {failures[0]}"
    assert out == "" and err == "", f"printed during planning:\n{out[:2000]}\n{err[:2000]}"
