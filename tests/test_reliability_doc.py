"""docs/reliability.md's table of bad inputs and faults is the one the tests declare."""

import faults


def test_reliability_table_is_the_one_the_tests_declare():
    declared = faults.table(faults.collect())
    assert faults.documented() == declared, (
        "docs/reliability.md differs from the faults the tests declare: run "
        "`python tests/faults.py` and review the diff")


def test_every_declared_fault_names_a_test_that_exists():
    import importlib

    for item in faults.collect():
        module, name = item.test.split("::")
        assert hasattr(importlib.import_module(module[:-3]), name), item.test
