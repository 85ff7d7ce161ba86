"""Edge cases: odd inputs, odd files, odd streams and signals, exact wording."""

import main


def test_matvec_of_an_iterator_of_rows_matches_the_list_version_after_an_overflow():
    # 1e308 + 1e308 overflows fsum in the second row, midway through the rows;
    # the fallback must then see every row again, not what is left of them.
    weights = [[1.0, 2.0], [1e308, 1e308], [3.0, -1.0]]
    vector = [1.0, 1.0]
    expected = main.matvec(weights, vector)
    assert expected == [3.0, float("inf"), 2.0]
    assert main.matvec(iter(weights), vector) == expected
    columns = [list(column) for column in zip(*weights)]
    assert main.matvec(zip(*columns), vector) == expected
