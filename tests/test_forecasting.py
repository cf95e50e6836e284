"""Ridership forecasting: loader, splits and windows, baseline, calendar features, models."""

import numpy as np
import pytest
import torch

import fusedrnn
from fusedrnn.datasets.ridership import (
    SPLITS,
    Scaling,
    calendar_day_types,
    forecast_features,
    forecast_windows,
    holiday_flags,
    load_ridership,
    n_forecast_features,
)
from fusedrnn.datasets.windows import (
    date_range,
    forecast_origins,
    gather_windows,
    horizon_targets,
    masked_mae,
    seasonal_naive,
    target_mask,
)
from fusedrnn.models.forecasting import (
    Seq2SeqForecaster,
    WaveNetForecaster,
    build_forecaster,
    dip_augment,
    masked_sequence_loss,
)

H = 7


@pytest.fixture(scope="module")
def data():
    return load_ridership()


@pytest.fixture(scope="module")
def scaling(data):
    return Scaling.fit(data)


# --- loader ------------------------------------------------------------------------------------

def test_loader_parses_dedups_and_sorts(data):
    assert data.dates.dtype == np.dtype("datetime64[D]")
    assert data.dates[0] == np.datetime64("2001-01-01") and data.dates[-1] == np.datetime64("2021-11-30")
    assert np.all(np.diff(data.dates) == np.timedelta64(1, "D"))  # sorted, unique, no gaps
    assert len(data) == 7639  # 7701 CSV rows less 62 duplicates
    i = data.index("2019-01-30")  # the polar vortex
    assert (data.day_type[i], data.rail[i], data.bus[i]) == ("W", 97917.0, 124154.0)
    assert set(np.unique(data.day_type)) == {"W", "A", "U"}


def _write_csv(path, rows):
    path.write_text("service_date,day_type,bus,rail_boardings,total_rides\n"
                    + "".join(",".join(map(str, r)) + "\n" for r in rows))


def test_loader_on_a_messy_file(tmp_path):
    path = tmp_path / "r.csv"
    rows = [("01/03/2020", "W", 3, 30, 33), ("01/01/2020", "U", 1, 10, 11),
            ("01/02/2020", "W", 2, 20, 22), ("01/01/2020", "U", 1, 10, 11)]
    _write_csv(path, rows)
    d = load_ridership(path)
    assert d.dates.tolist() == [np.datetime64("2020-01-01"), np.datetime64("2020-01-02"),
                                np.datetime64("2020-01-03")]
    assert d.rail.tolist() == [10, 20, 30] and d.day_type.tolist() == ["U", "W", "W"]
    _write_csv(path, rows + [("01/02/2020", "W", 2, 21, 23)])
    with pytest.raises(ValueError, match="twice with different values"):
        load_ridership(path)
    _write_csv(path, rows[:2])
    with pytest.raises(ValueError, match="gap after 2020-01-01"):
        load_ridership(path)


def test_to_frame_is_date_indexed(data):
    pd = pytest.importorskip("pandas")
    frame = data.to_frame()
    assert isinstance(frame.index, pd.DatetimeIndex) and frame.index.is_monotonic_increasing
    assert frame.index.is_unique and frame.loc["2019-01-30", "rail"] == 97917


# --- splits and windows ------------------------------------------------------------------------

def test_splits_cover_the_issue_dates(data):
    for start, end in SPLITS.values():
        lo, hi = date_range(data.dates, start, end)
        assert data.dates[lo] == np.datetime64(start) and data.dates[hi - 1] == np.datetime64(end)
    assert SPLITS == {"train": ("2016-01-01", "2018-12-31"), "valid": ("2019-01-01", "2019-05-31"),
                      "test": ("2019-06-01", "2019-12-31")}


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_windows_targets_inside_split_and_no_leakage(data, scaling, split):
    length = 28
    w = forecast_windows(data, split, scaling, length=length)
    lo, hi = date_range(data.dates, *SPLITS[split])
    origins = w.origins
    # every step's scored target lies in the split
    step_day = origins[:, None] - length + 1 + np.arange(length)[None, :]
    target_day = step_day[:, :, None] + np.arange(1, H + 1)[None, None, :]
    assert np.all((target_day[w.mask] >= lo) & (target_day[w.mask] < hi))
    assert np.all(w.y[~w.mask] == 0)
    # no leakage: a step's inputs are the origin's day (the rail value of that day) ...
    np.testing.assert_allclose(w.x[:, -1, 0], (data.rail[origins] - scaling.rail_mean) / scaling.rail_std,
                               rtol=1e-6)
    # ... and its targets are strictly later days, the true values
    scored = w.mask[:, -1]
    np.testing.assert_array_equal(w.last_target[scored], data.rail[target_day[:, -1][scored]])
    # each day of the split is scored exactly once per horizon at the last step
    for h in range(H):
        days = target_day[:, -1, h][scored[:, h]]
        assert sorted(days.tolist()) == list(range(lo, hi))
    # y is the standardised target
    np.testing.assert_allclose(scaling.rail_to_boardings(w.y[w.mask]), data.rail[target_day[w.mask]],
                               rtol=1e-5)


def test_training_windows_never_see_a_validation_target(data, scaling):
    w = forecast_windows(data, "train", scaling, length=14)
    _, hi = date_range(data.dates, *SPLITS["train"])
    assert w.origins.max() == hi - 2  # the last training origin predicts the split's last day
    assert not w.mask[-1, -1, 1:].any()  # its further horizons fall in validation: masked


def test_window_helpers():
    assert forecast_origins(10, 20, 3, 4).tolist() == list(range(7, 19))
    assert forecast_origins(2, 20, 3, 4)[0] == 3  # limited by the history needed
    np.testing.assert_array_equal(horizon_targets(np.arange(5.0), 2),
                                  [[1, 2], [2, 3], [3, 4], [4, np.nan], [np.nan, np.nan]])
    np.testing.assert_array_equal(target_mask(5, 2, 2, 4),
                                  [[False, True], [True, True], [True, False], [False, False],
                                   [False, False]])
    np.testing.assert_array_equal(gather_windows(np.arange(10), np.array([3, 9]), 3), [[1, 2, 3], [7, 8, 9]])
    with pytest.raises(IndexError):
        gather_windows(np.arange(10), np.array([1]), 3)


def test_seasonal_naive_on_a_synthetic_series():
    week = np.array([5.0, 6, 7, 6, 5, 2, 1])
    series = np.tile(week, 10) + np.arange(70) * 0.5  # weekly pattern plus a trend
    origins = np.array([20, 30, 40])
    pred = seasonal_naive(series, origins, H)
    for i, t in enumerate(origins):
        for h in range(1, H + 1):
            assert pred[i, h - 1] == series[t + h - 7]
    target = horizon_targets(series, H)[origins]
    # the pattern repeats, so the error is the trend over a week: 7 * 0.5
    np.testing.assert_allclose(masked_mae(pred, target, np.ones_like(target, dtype=bool)), 3.5)
    assert seasonal_naive(series, np.array([30]), 9)[0, 8] == series[30 + 9 - 14]  # 2 weeks back
    mask = np.zeros((3, H), dtype=bool)
    mask[0] = True
    target[1:] = np.nan  # masked entries may be NaN
    np.testing.assert_allclose(masked_mae(pred, target, mask), 3.5)


def test_naive_baseline_reproduces_the_published_figures(data):
    for split, expected in (("valid", 64815.36), ("test", 62948.58)):
        lo, hi = date_range(data.dates, *SPLITS[split])
        origins = forecast_origins(lo, hi, H, 56)
        mask = target_mask(len(data), H, lo, hi)[origins]
        mae = masked_mae(seasonal_naive(data.rail, origins, H), horizon_targets(data.rail, H)[origins], mask)
        np.testing.assert_allclose(mae, expected, atol=0.01)


# --- features ----------------------------------------------------------------------------------

def test_calendar_features(data, scaling):
    assert calendar_day_types(np.array(["2019-06-01", "2019-06-02", "2019-06-03"],
                                       dtype="datetime64[D]")).tolist() == ["A", "U", "W"]
    assert (calendar_day_types(data.dates) == data.day_type).mean() > 0.97
    flags = holiday_flags(np.array(["2019-01-21", "2019-02-18", "2019-04-19", "2019-11-29",
                                    "2019-12-24", "2019-01-22", "2019-07-05"], dtype="datetime64[D]"))
    assert flags.tolist() == [1, 1, 1, 1, 1, 0, 0]
    f = forecast_features(data, scaling, H)
    assert f.shape == (len(data), n_forecast_features(H)) == (len(data), 2 + 4 * 8)
    i = data.index("2019-01-18")  # a Friday before MLK day (Monday 21st)
    day_types = f[i, 2:].reshape(8, 4)  # days t..t+7: W, A, U one-hot and the holiday flag
    assert day_types[:, :3].argmax(1).tolist() == [0, 1, 2, 0, 0, 0, 0, 0]
    assert day_types[:, 3].tolist() == [0, 0, 0, 1, 0, 0, 0, 0]
    assert forecast_features(data, scaling, H, multivariate=False).shape == (len(data), 1)
    assert forecast_features(data, scaling, H, holidays=False).shape[1] == n_forecast_features(H, True, False)
    assert np.isfinite(f).all()  # the last rows' future day types come from the calendar


# --- models ------------------------------------------------------------------------------------

CONFIGS = [
    {"model": "seq2seq", "cell": "lstm"},
    {"model": "seq2seq", "cell": "gru", "layers": 2},
    {"model": "conv", "cell": "gru", "conv_channels": 6},
    {"model": "wavenet", "channels": 6, "dilations": [1, 2, 4]},
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c["model"] + "-" + c.get("cell", ""))
def test_models_shapes_grads_and_backend_parity(config):
    C, B, T = 5, 3, 17
    fused = build_forecaster({**config, "n_features": C, "hidden": 8, "backend": "fused"})
    torch_model = build_forecaster({**config, "n_features": C, "hidden": 8, "backend": "torch"})
    torch_model.load_state_dict(fused.state_dict())  # the same parameter names and shapes
    x = torch.randn(B, T, C, requires_grad=True)
    out = fused(x)
    steps = fused.step_index(T)
    assert out.shape == (B, len(steps), H) and steps[-1] == T - 1  # the last output is the origin
    torch.testing.assert_close(out, torch_model(x), atol=2e-5, rtol=1e-4)
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in fused.parameters())
    if config["model"] == "conv":  # stride 2, kernel 4: outputs at steps 3, 5, ..., 15 of 16 kept
        assert steps.tolist() == list(range(4, T, 2))
    kinds = {type(m).__module__.split(".")[0] for m in fused.modules() if m is not fused}
    assert "fusedrnn" in kinds


def test_model_classes_and_receptive_field():
    model = build_forecaster({"model": "wavenet", "n_features": 3, "channels": 4})
    assert isinstance(model, WaveNetForecaster) and model.receptive_field == 64
    assert isinstance(build_forecaster({"model": "conv", "n_features": 3}), Seq2SeqForecaster)
    with pytest.raises(ValueError, match="model must be one of"):
        build_forecaster({"model": "transformer", "n_features": 3})


def test_layernorm_lstm_hook():
    config = {"model": "seq2seq", "cell": "lnlstm", "n_features": 3, "hidden": 4}
    if not hasattr(fusedrnn, "LayerNormLSTM"):
        with pytest.raises(ValueError, match="LayerNormLSTM is not available in this build"):
            build_forecaster(config)
    else:
        assert build_forecaster(config)(torch.randn(2, 5, 3)).shape == (2, 5, H)
    with pytest.raises(ValueError):
        build_forecaster({**config, "backend": "torch"})


def test_masked_loss_ignores_masked_targets():
    model = build_forecaster({"model": "seq2seq", "n_features": 2, "hidden": 4})
    x = torch.randn(2, 6, 2)
    y = torch.zeros(2, 6, H)
    mask = torch.zeros(2, 6, H, dtype=torch.bool)
    mask[0, -1] = True
    loss = masked_sequence_loss(model, x, y, mask)
    y_other = y.clone()
    y_other[~mask] = 1e6  # masked targets may hold anything
    assert torch.equal(loss, masked_sequence_loss(model, x, y_other, mask))
    with torch.no_grad():
        torch.testing.assert_close(loss, model(x)[0, -1].abs().mean())


def test_a_few_steps_lower_the_loss(data, scaling):
    torch.manual_seed(0)
    w = forecast_windows(data, "train", scaling, length=21)
    idx = np.arange(0, len(w), 40)
    x, y, m = (torch.from_numpy(a[idx]) for a in (w.x, w.y, w.mask))
    for config in CONFIGS:
        model = build_forecaster({**config, "n_features": x.shape[-1], "hidden": 16})
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        first = float(masked_sequence_loss(model, x, y, m).detach())
        for _ in range(15):
            loss = masked_sequence_loss(model, x, y, m)
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert float(masked_sequence_loss(model, x, y, m).detach()) < 0.7 * first, config


def test_dip_augment_only_lowers_counts():
    torch.manual_seed(0)
    mean, std = torch.tensor([600.0, 700.0]), torch.tensor([100.0, 150.0])
    x = torch.randn(4, 50, 6)
    assert dip_augment(x, 0.0, mean, std, 2) is x
    out = dip_augment(x, 1.0, mean, std, 2)
    raw_in, raw_out = x[..., :2] * std + mean, out[..., :2] * std + mean
    ratio = raw_out / raw_in
    assert ((ratio >= 0.2 - 1e-5) & (ratio <= 1 + 1e-5)).all()
    torch.testing.assert_close(ratio[..., 0], ratio[..., 1])  # a dip hits every count of the day
    assert torch.equal(out[..., 2:], x[..., 2:])  # calendar inputs untouched
    some = dip_augment(x, 0.1, mean, std, 2)
    changed = ((some - x).abs() > 1e-3).any(-1).float().mean()  # beyond rounding
    assert 0.02 < changed < 0.25
