"""The model zoo (tests/python/zoo.py) in the default test run: a fast
subset that passes every door once. The whole zoo, 16 families x 5 doors x
SGD and AdamW, is one command (docs/model_zoo.md):

    ALPA_ZOO=all .venv/bin/python -m pytest tests/python/test_model_zoo.py -q
    # or, with the table as markdown:
    .venv/bin/python tests/python/zoo.py --markdown docs/model_zoo.md
"""
import os

import pytest

import zoo

FAST = [("llama", "parallelize 1x2"), ("llama", "pipeshard 2"),
        ("transformer_encoder", "compile 2"), ("opt", "parallelize 2x2"),
        ("cnn_batchnorm", "pipeshard 4")]
if os.environ.get("ALPA_ZOO") == "all":
    CELLS = [(f, d) for f in zoo.FAMILIES for d in zoo.DOORS]
    OPTIMIZERS = list(zoo.OPTIMIZERS)
else:
    CELLS, OPTIMIZERS = FAST, ["sgd"]


@pytest.fixture(scope="module")
def verdicts():
    results = zoo.run(CELLS, OPTIMIZERS)
    families = [f for f in zoo.FAMILIES if any(c[0] == f for c in CELLS)]
    doors = [d for d in zoo.DOORS if any(c[1] == d for c in CELLS)]
    # printed at the end of the run by conftest.pytest_terminal_summary
    zoo.LAST_TABLE = ("model zoo (" + ", ".join(OPTIMIZERS) + "; 'equal': losses and "
                      "full_state_dict() equal single-process training)\n" +
                      zoo.table(results, families, doors, OPTIMIZERS))
    return results


@pytest.mark.parametrize("family,door", CELLS, ids=[f"{f}-{d.replace(' ', '-')}" for f, d in CELLS])
def test_equals_single_process(verdicts, family, door):
    for optimizer in OPTIMIZERS:
        assert verdicts[(family, door, optimizer)] == "equal", (family, door, optimizer)
