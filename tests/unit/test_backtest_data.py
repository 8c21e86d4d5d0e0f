"""Loading OHLCV files and rejecting bad data with the symbol and row named."""

import numpy as np
import pandas as pd
import pytest
from pandas.tseries.holiday import USFederalHolidayCalendar
from pandas.tseries.offsets import CustomBusinessDay

from backtest import DataError, PriceData, load_ohlcv, validate_ohlcv
from backtest.synthetic import ohlcv_from_closes

YAHOO_CSV = """Date,Open,High,Low,Close,Adj Close,Volume
2024-01-02,187.15,188.44,183.89,185.64,184.94,82488700
2024-01-03,184.22,185.88,183.43,184.25,183.55,58414500
2024-01-04,182.15,183.09,180.88,181.91,181.22,71983600
2024-01-05,181.99,182.76,180.17,181.18,180.49,62303300
2024-01-08,182.09,185.60,181.50,185.56,184.86,59144500
"""


def write(tmp_path, text, name="AAPL.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yahoo_style_csv(tmp_path):
    write(tmp_path, YAHOO_CSV)
    frame = load_ohlcv("{symbol}.csv", "AAPL", base_dir=tmp_path)
    assert frame.index.name == "timestamp"
    assert frame.index.tz is None
    assert list(frame.columns) == ["open", "high", "low", "close", "volume", "adj_close"]
    assert (frame.dtypes == np.float64).all()
    assert frame.index[0] == pd.Timestamp("2024-01-02")
    assert frame["close"].iloc[-1] == 185.56
    assert frame["adj_close"].iloc[0] == 184.94
    assert frame["volume"].iloc[1] == 58414500


def test_start_and_end_are_inclusive(tmp_path):
    path = write(tmp_path, YAHOO_CSV)
    frame = load_ohlcv(path, "AAPL", start="2024-01-03", end="2024-01-05")
    assert list(frame.index.strftime("%m-%d")) == ["01-03", "01-04", "01-05"]


def test_date_only_end_includes_the_whole_day(tmp_path):
    index = pd.date_range("2024-01-01", periods=72, freq="1h")
    ohlcv_from_closes(np.linspace(10, 20, 72)).set_axis(index).to_csv(
        tmp_path / "BTC.csv", index_label="timestamp"
    )
    frame = load_ohlcv(tmp_path / "BTC.csv", "BTC", end="2024-01-02")
    assert frame.index[-1] == pd.Timestamp("2024-01-02 23:00")


def test_lowercase_columns_without_volume_and_a_named_datetime_column(tmp_path):
    write(
        tmp_path,
        "datetime,open,high,low,close\n2024-01-01 10:00,1,2,0.5,1.5\n2024-01-01 11:00,1.5,2,1,1.8\n",
        "X.csv",
    )
    frame = load_ohlcv(tmp_path / "X.csv", "X")
    assert frame["volume"].tolist() == [0.0, 0.0]
    assert frame.index[1] == pd.Timestamp("2024-01-01 11:00")


def test_timezone_aware_times_become_naive_utc(tmp_path):
    write(tmp_path, "Time,Close\n2024-03-01T09:30:00-05:00,10\n2024-03-01T10:30:00-05:00,11\n", "X.csv")
    frame = load_ohlcv(tmp_path / "X.csv", "X")
    assert list(frame.index) == [pd.Timestamp("2024-03-01 14:30"), pd.Timestamp("2024-03-01 15:30")]
    assert frame["high"].tolist() == frame["close"].tolist()  # close-only file


def test_epoch_milliseconds(tmp_path):
    write(tmp_path, "timestamp,close\n1704067200000,10\n1704070800000,11\n", "X.csv")
    frame = load_ohlcv(tmp_path / "X.csv", "X")
    assert frame.index[0] == pd.Timestamp("2024-01-01 00:00")


@pytest.mark.parametrize("suffix", [".parquet", ".pq"])
def test_parquet_with_a_datetime_index(tmp_path, suffix):
    index = pd.date_range("2024-01-01", periods=5, freq="D", tz="Europe/Berlin", name="Date")
    frame = pd.DataFrame(
        {"Open": 1.0, "High": 2.0, "Low": 0.5, "Close": [1, 2, 3, 4, 5], "Volume": 10}, index=index
    )
    frame.to_parquet(tmp_path / f"ETH{suffix}")
    loaded = load_ohlcv(f"{{symbol}}{suffix}", "ETH", base_dir=tmp_path)
    assert loaded.index[0] == pd.Timestamp("2023-12-31 23:00")
    assert loaded["close"].tolist() == [1, 2, 3, 4, 5]


def test_parquet_with_a_timestamp_column(tmp_path):
    frame = pd.DataFrame(
        {"timestamp": pd.date_range("2024-01-01", periods=3, freq="h"), "close": [1.0, 2.0, 3.0]}
    )
    frame.to_parquet(tmp_path / "X.parquet")
    assert len(load_ohlcv(tmp_path / "X.parquet", "X")) == 3


def test_missing_file_names_symbol_and_path(tmp_path):
    with pytest.raises(DataError, match=r"^AAPL: data/AAPL\.csv not found") as error:
        load_ohlcv("data/{symbol}.csv", "AAPL", base_dir=tmp_path)
    assert error.value.symbol == "AAPL" and error.value.row is None


def test_missing_close_column(tmp_path):
    write(tmp_path, "Date,Open\n2024-01-01,1\n2024-01-02,2\n")
    with pytest.raises(DataError, match="AAPL: .*no close column"):
        load_ohlcv(tmp_path / "AAPL.csv", "AAPL")


def test_missing_timestamp_column(tmp_path):
    write(tmp_path, "Open,Close\n1,1\n2,2\n")
    with pytest.raises(DataError, match="AAPL: .*no timestamp column"):
        load_ohlcv(tmp_path / "AAPL.csv", "AAPL")


def test_unparseable_date_names_the_row(tmp_path):
    write(tmp_path, "Date,Close\n2024-01-01,1\n2024-01-02,2\nnot a date,3\n")
    with pytest.raises(DataError, match="AAPL: row 3: cannot parse timestamp 'not a date'") as error:
        load_ohlcv(tmp_path / "AAPL.csv", "AAPL")
    assert error.value.row == 3


def test_non_numeric_price_names_the_row(tmp_path):
    write(tmp_path, "Date,Close\n2024-01-01,1\n2024-01-02,n/a?\n")
    with pytest.raises(DataError, match="AAPL: row 2: close is not a number"):
        load_ohlcv(tmp_path / "AAPL.csv", "AAPL")


def test_nan_close_in_a_file_names_the_file_row_and_time(tmp_path):
    lines = ["Date,Open,High,Low,Close"] + [f"2024-01-{day:02d},1,1,1,1" for day in range(1, 21)]
    lines[17] = "2024-01-17,1,1,1,"
    write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(DataError) as error:
        load_ohlcv(tmp_path / "AAPL.csv", "AAPL")
    assert str(error.value) == "AAPL: row 17 (2024-01-17 00:00:00): close is NaN"


def test_rows_outside_start_end_are_not_checked_but_rows_keep_file_numbers(tmp_path):
    lines = ["Date,Close"] + [f"2024-01-{day:02d},1" for day in range(1, 11)]
    lines[2] = "2024-01-02,"  # NaN before the start: ignored
    lines[8] = "2024-01-08,-5"
    write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"AAPL: row 8 \(2024-01-08 00:00:00\): close is not positive"):
        load_ohlcv(tmp_path / "AAPL.csv", "AAPL", start="2024-01-03")


def frame_with(column, position, value):
    frame = ohlcv_from_closes([10.0, 11, 12, 13, 14, 15], spread=0.01)
    frame.iloc[position, frame.columns.get_loc(column)] = value
    return frame


@pytest.mark.parametrize(
    "frame, message",
    [
        (frame_with("close", 3, np.nan), "row 4 (2024-01-04 00:00:00): close is NaN"),
        (frame_with("high", 1, np.inf), "row 2 (2024-01-02 00:00:00): high is inf"),
        (frame_with("low", 2, 0.0), "row 3 (2024-01-03 00:00:00): low is not positive (0.0)"),
        (frame_with("open", 5, -1.0), "row 6 (2024-01-06 00:00:00): open is not positive (-1.0)"),
        (frame_with("high", 4, 1.0), "row 5 (2024-01-05 00:00:00): high (1.0) is below low"),
    ],
)
def test_bad_prices_name_symbol_and_row(frame, message):
    with pytest.raises(DataError) as error:
        validate_ohlcv(frame, "AAPL")
    assert str(error.value).startswith(f"AAPL: {message}")


def test_duplicate_timestamp_names_the_second_occurrence():
    frame = ohlcv_from_closes([1.0, 2, 3, 4])
    frame.index = pd.DatetimeIndex(["2024-01-01", "2024-01-02", "2024-01-02", "2024-01-03"], name="timestamp")
    with pytest.raises(DataError, match=r"AAPL: row 3 \(2024-01-02 00:00:00\): duplicate timestamp") as error:
        validate_ohlcv(frame, "AAPL")
    assert error.value.row == 3


def test_unsorted_timestamps_name_the_row_that_goes_backwards():
    frame = ohlcv_from_closes([1.0, 2, 3, 4])
    frame.index = pd.DatetimeIndex(["2024-01-01", "2024-01-03", "2024-01-02", "2024-01-04"], name="timestamp")
    with pytest.raises(DataError, match=r"AAPL: row 3 \(2024-01-02 00:00:00\): timestamp goes backwards"):
        validate_ohlcv(frame, "AAPL")


def test_too_few_bars():
    with pytest.raises(DataError, match="^AAPL: only 40 bars, the parameters need at least 201$"):
        validate_ohlcv(ohlcv_from_closes(np.ones(40)), "AAPL", min_bars=201)


def test_price_data_is_read_only_and_measures_bars_per_year():
    data = PriceData.from_frame(ohlcv_from_closes(np.arange(1.0, 101.0), freq="1h"), "X")
    assert len(data) == 100
    assert data.bars_per_year == pytest.approx(8766.0)
    assert data.timestamps.dtype == np.dtype("datetime64[ns]")
    np.testing.assert_allclose(data.close_returns[1:3], [1.0, 0.5])
    with pytest.raises(ValueError):
        data.close[0] = 5.0
    head = data.head(10)
    assert len(head) == 10 and head.bars_per_year == data.bars_per_year


def test_bars_per_year_of_weekday_and_exchange_calendars():
    weekdays = ohlcv_from_closes(np.ones(2000), freq="B")
    assert PriceData.from_frame(weekdays, "X").bars_per_year == pytest.approx(365.25 * 5 / 7, rel=0.01)
    exchange_days = pd.date_range(
        "2015-01-01", "2024-12-31", freq=CustomBusinessDay(calendar=USFederalHolidayCalendar())
    )
    exchange = ohlcv_from_closes(np.ones(len(exchange_days))).set_axis(exchange_days.rename("timestamp"))
    assert PriceData.from_frame(exchange, "X").bars_per_year == pytest.approx(252, abs=3)


def test_csv_written_by_pandas_with_an_unnamed_index(tmp_path):
    ohlcv_from_closes([1.0, 2.0, 3.0]).rename_axis(None).to_csv(tmp_path / "X.csv")
    frame = load_ohlcv(tmp_path / "X.csv", "X")
    assert frame.index[2] == pd.Timestamp("2024-01-03") and frame["close"].tolist() == [1, 2, 3]
