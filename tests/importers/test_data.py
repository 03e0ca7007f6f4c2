"""Held-out data files for an import: .npz and .csv read, bad ones refused in one line naming the file."""

from __future__ import annotations

import numpy as np
import pytest

from plc_anna.importers.data import load_data


def test_npz_and_csv_give_the_same_inputs_and_targets(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), rng.normal(size=(20, 2))
    np.savez(tmp_path / "d.npz", X=X, y=y)
    np.savetxt(tmp_path / "d.csv", np.c_[X, y], delimiter=",", header="a,b,c,y0,y1", comments="")
    for name in ("d.npz", "d.csv"):
        got_X, got_y = load_data(tmp_path / name, 3)
        np.testing.assert_allclose(got_X, X)
        np.testing.assert_allclose(got_y, y)
    np.savetxt(tmp_path / "x.csv", X, delimiter=",")
    assert load_data(tmp_path / "x.csv", 3)[1] is None                   # inputs only: no targets


@pytest.mark.parametrize("name,content,message", [
    ("bad.csv", "a,b\n1,2\n", r"bad\.csv: 2 columns; the model takes 4 inputs"),
    ("nan.csv", "1,2,3,4\n1,nan,3,4\n", r"nan\.csv: X must be a non-empty 2-D array of finite numbers"),
    ("data.json", "{}", r"data\.json: data must be a \.npz \(X, y\) or a \.csv file"),
])
def test_bad_files_are_one_line_errors(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=message) as raised:
        load_data(tmp_path / name, 4)
    assert "\n" not in str(raised.value)
    with pytest.raises(ValueError, match=r"missing\.npz: no such file"):
        load_data(tmp_path / "missing.npz", 4)


def test_an_npz_without_inputs_names_its_keys(tmp_path):
    np.savez(tmp_path / "d.npz", inputs=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"no array 'X' \(the inputs\); keys: inputs"):
        load_data(tmp_path / "d.npz", 2)
