import pytest

from augpipe.format.restart import interval_mcus


@pytest.mark.parametrize("width", range(1, 3000, 7))
def test_interval_divides_the_mcu_row(width):
    k = interval_mcus(width, 16)
    mcux = -(-width // 16)
    assert 1 <= k <= mcux and mcux % k == 0


def test_interval_choices():
    assert interval_mcus(500, 16) == 4  # 32 MCUs
    assert interval_mcus(480, 16) == 5  # 30 MCUs: 3 and 5 tie around 4, the larger wins
    assert interval_mcus(16 * 37, 16) == 1  # prime and long: one segment per MCU
    assert interval_mcus(16 * 7, 16) == 7  # prime and short: the whole row
    assert interval_mcus(64, 8) == 4  # 4:4:4, 8 MCUs


def test_interval_rejects_bad_sizes():
    with pytest.raises(ValueError):
        interval_mcus(0, 16)
