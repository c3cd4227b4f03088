"""vizlib.data.samples: sample images, digits, synthetic fields and the validating upload readers."""

from __future__ import annotations

import io
import re

import netCDF4
import numpy as np
import pytest
from PIL import Image

from vizlib.data import samples


def _png(array: np.ndarray, **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=save.pop("format", "PNG"), **save)
    return buffer.getvalue()


def test_sample_images_load_in_unit_range():
    for name in ("camera", "astronaut", "coins"):
        image = samples.load_sample_image(name)
        assert image.dtype == np.float64 and 0 <= image.min() and image.max() <= 1
    assert samples.load_sample_image("camera").shape == (512, 512)
    assert samples.load_sample_image("astronaut").shape == (512, 512, 3)
    assert set(samples.sample_image_names()) >= {"camera", "astronaut", "coins"}
    with pytest.raises(ValueError, match="Unknown sample"):
        samples.load_sample_image("lena")


def test_light_background_reads_the_frame_not_the_strokes():
    paper = np.ones((40, 30))
    paper[8:32, 12:18] = 0.0  # a dark one on white paper
    assert samples.light_background(paper)
    assert not samples.light_background(1.0 - paper)  # light on dark, as the digits are
    assert not samples.light_background(samples.load_digit(0)[0])  # scikit-learn's
    colour = np.stack([paper, paper, np.zeros_like(paper)], axis=2)  # yellow: mean 2/3
    assert samples.light_background(colour)
    assert not samples.light_background(np.array([[0.0, 1.0], [0.4, 0.6]]))  # median 0.5
    assert samples.LIGHT_ON_DARK == {"digits", "mnist"}


def test_image_concerns_name_a_flat_image_and_a_squeezed_one():
    paper = np.ones((40, 30))
    paper[8:32, 12:18] = 0.0
    assert samples.image_concerns(paper, (28, 28)) == []  # 4:3, a little stretched: fine
    (flat,) = samples.image_concerns(np.full((30, 30), 0.2), (28, 28))
    assert "Every pixel of this image has the same value (0.20 of 1)" in flat
    red = np.zeros((30, 30, 3))
    red[..., 0] = 1.0  # the channels differ, yet no pixel differs from another
    (flat,) = samples.image_concerns(red, (28, 28))
    assert "Every pixel of this image has the same colour" in flat
    near_flat = np.full((30, 30), 0.5)
    near_flat[0, 0] += 0.5 / 255  # under one grey level apart: still nothing to see
    assert len(samples.image_concerns(near_flat, (28, 28))) == 1
    # 300 wide, 5 high into 28×28: the width shrinks 60 times more than the height
    wide = np.random.default_rng(0).uniform(size=(5, 300))
    (squeezed,) = samples.image_concerns(wide, (28, 28))
    assert squeezed.startswith("This 300×5 image becomes 28×28: its width is squeezed 60 times")
    (tall,) = samples.image_concerns(wide.T, (32, 32))
    assert "its height is squeezed 60 times more than its width" in tall
    # the limit is the model's own shape's ratio, not a square's
    assert samples.image_concerns(wide[:, :60], (8, 96)) == []  # 12:1 into 12:1
    assert len(samples.image_concerns(np.zeros((5, 300)), (28, 28))) == 2


def test_digit_matches_sklearn():
    from sklearn.datasets import load_digits

    image, label = samples.load_digit(10)
    digits = load_digits()
    assert image.shape == (8, 8) and label == digits.target[10]
    np.testing.assert_allclose(image * 16, digits.images[10])
    with pytest.raises(ValueError, match="between 0 and 1796"):
        samples.load_digit(5000)


def test_typhoon_field_has_warm_eye_and_cold_bands():
    field = samples.synthetic_field("typhoon", size=101)
    assert field.shape == (101, 101)
    centre, ring = field[50, 50], field[50, 50 + 6]  # eye vs eyewall (r about 0.12)
    assert centre > 285 and ring < 220  # clear warm eye, cold eyewall tops, kelvin
    assert 190 < field.min() and field.max() <= 295
    # spiral bands: along a circle of radius 0.5 the brightness temperature oscillates
    theta = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    rr, cc = (
        np.round(50 - 25 * np.sin(theta)).astype(int),
        np.round(50 + 25 * np.cos(theta)).astype(int),
    )
    circle = field[rr, cc]
    assert circle.max() - circle.min() > 20


def test_front_field_has_a_sharp_gradient_and_noise_is_seeded():
    field = samples.synthetic_field("front", size=64)
    gy, gx = np.gradient(field)
    strength = np.hypot(gx, gy)
    assert strength.max() > 5 * np.median(strength)  # the front is much sharper than the background
    assert field[0].mean() < field[-1].mean()  # colder to the north (top)
    a = samples.synthetic_field("front", size=64, noise=0.5, seed=3)
    b = samples.synthetic_field("front", size=64, noise=0.5, seed=3)
    c = samples.synthetic_field("front", size=64, noise=0.5, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.std(a - field) == pytest.approx(0.5, rel=0.1)
    with pytest.raises(ValueError, match="Noise"):
        samples.synthetic_field("front", noise=-1)
    with pytest.raises(ValueError, match="Unknown field"):
        samples.synthetic_field("hurricane")


def test_read_png_and_jpeg():
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    out = samples.read_image_upload(_png(gray))
    np.testing.assert_allclose(out, gray / 255)
    rgba = np.zeros((4, 5, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[0, :, 3] = 255  # row 0 opaque red, row 1 half transparent, the rest transparent
    rgba[1, :, 3] = 128
    out = samples.read_image_upload(_png(rgba))
    assert out.shape == (4, 5, 3)
    np.testing.assert_allclose(out[0], [[1.0, 0.0, 0.0]] * 5)
    np.testing.assert_allclose(out[1], [[1.0, 127 / 255, 127 / 255]] * 5, atol=1 / 255)
    np.testing.assert_allclose(out[2:], 1.0)  # laid on white, whatever colour was hidden
    la = np.stack([np.zeros((3, 3), np.uint8), np.full((3, 3), 0, np.uint8)], axis=-1)
    assert (
        samples.read_image_upload(_png(la)).tolist() == np.ones((3, 3)).tolist()
    )  # grey stays grey
    jpeg = samples.read_image_upload(_png(np.full((8, 8, 3), 128, np.uint8), format="JPEG"))
    assert jpeg.shape == (8, 8, 3) and abs(jpeg.mean() - 128 / 255) < 0.02


def test_exif_rotation_is_applied():
    image = Image.fromarray(np.zeros((4, 10), dtype=np.uint8))  # 10 wide, 4 tall
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    assert samples.read_image_upload(buffer.getvalue()).shape == (10, 4)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"not an image at all" * 10, "could not be read"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "could not be read"),
    ],
)
def test_corrupt_images_are_refused(data, message):
    with pytest.raises(ValueError, match=message):
        samples.read_image_upload(data)


def test_huge_image_refused_before_decoding():
    # 1-bit PNGs are tiny on disk but huge when decoded: refused from the header alone.
    for side, message in ((6_000, "36,000,000 pixels"), (14_000, "decoded safely")):
        buffer = io.BytesIO()
        Image.new("1", (side, side)).save(buffer, format="PNG")
        assert len(buffer.getvalue()) < 1_000_000
        with pytest.raises(ValueError, match=message):
            samples.read_image_upload(buffer.getvalue())
    with pytest.raises(ValueError, match="at most 100"):
        samples.read_image_upload(_png(np.zeros((20, 20), np.uint8)), max_pixels=100)


def test_other_image_formats_refused():
    with pytest.raises(ValueError, match="Only PNG and JPEG"):
        samples.read_image_upload(_png(np.zeros((4, 4), np.uint8), format="BMP"))


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def test_read_npy():
    grid = np.arange(12, dtype=np.int16).reshape(3, 4)
    np.testing.assert_array_equal(samples.read_npy_upload(_npy(grid)), grid)
    assert samples.read_npy_upload(_npy(grid[None])).shape == (3, 4)  # (1, H, W) squeezed
    assert samples.read_npy_upload(_npy(grid[..., None])).shape == (3, 4)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros(5), "1 dimension"),
        (np.zeros((2, 3, 4)), "3 dimension"),
        (np.zeros((2, 2, 2, 2)), "4 dimension"),
        (np.array([[1.0, np.nan], [0, 1]]), "1 NaN and 0 infinite"),
        (np.array([[1.0, np.inf], [0, 1]]), "0 NaN and 1 infinite"),
        (np.array([["a", "b"], ["c", "d"]]), "real numbers"),
        (np.zeros((1, 5)), "at least 2×2"),
        (
            np.array([[1e300, 0], [0, 1]]),
            r"1 value\(s\) beyond ±3\.4e38 \(its values run from 0 to 1e\+300\)",
        ),
        (np.array([[-1e39, 1e39], [0, 1]]), r"2 value\(s\) beyond ±3\.4e38"),
    ],
)
def test_read_npy_rejects(array, message):
    with pytest.raises(ValueError, match=message):
        samples.read_npy_upload(_npy(array))


def test_read_npy_keeps_the_largest_float32_values():
    """Values up to float32's largest, 3.4028235e38, fit the filters' numbers: kept as they are."""
    largest = float(np.finfo(np.float32).max)
    grid = np.array([[largest, -largest], [1e38, 0.0]])
    np.testing.assert_array_equal(samples.read_npy_upload(_npy(grid)), grid)
    assert np.isfinite(samples.read_npy_upload(_npy(grid)).astype(np.float32)).all()
    with pytest.raises(ValueError, match="beyond ±3.4e38"):
        samples.read_npy_upload(_npy(grid * 1.001))  # 3.406e38 becomes inf in float32


def test_read_npy_never_unpickles():
    objects = np.array([{"a": 1}, None], dtype=object)
    with pytest.raises(ValueError, match="unpickling"):
        samples.read_npy_upload(_npy(objects))
    with pytest.raises(ValueError, match="not a valid .npy"):
        samples.read_npy_upload(b"\x93NUMPY garbage")
    # Bytes without the header are not "Python objects": np.load would say pickle, we say .npy.
    import pickle

    for data in (bytes(range(256)), pickle.dumps([1, 2]), b"1,2\n3,4\n"):
        with pytest.raises(ValueError, match="lacks the NumPy header"):
            samples.read_npy_upload(data)
    buf = io.BytesIO()
    np.savez(buf, a=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="npz"):
        samples.read_npy_upload(buf.getvalue())


def _damaged_npy() -> dict[str, bytes]:
    """A good .npy of a 3x4 float64 grid, damaged four ways."""
    good = _npy(np.arange(12.0).reshape(3, 4))
    end = good.index(b"\n") + 1  # the header's end
    header = good[10:end].decode("latin1")
    unknown = header.replace("'<f8'", "'<zz'").encode("latin1")
    return {
        "version": b"\x93NUMPY" + bytes([32, 103]) + good[8:],  # (32, 103): 'g' and ' '
        "values": good[:-10],
        "header": good[:20],
        "type": good[:10] + unknown + good[end:],
    }


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("version", "its header gives format version 32.103"),
        ("values", "it holds 86 of the 96 bytes of values its header announces"),
        ("header", "ends before its header and values are complete"),
        ("type", r"its header \(the array's type and shape\) cannot be read"),
    ],
)
def test_a_damaged_npy_is_explained_without_numpys_wording(damage, reason):
    data = _damaged_npy()[damage]
    for read in (samples.read_npy_upload, lambda d: samples.read_table_upload(d, "f.npy")):
        with pytest.raises(ValueError) as info:
            read(data)
        message = str(info.value)
        assert message.startswith("The file is not a valid .npy file: ")
        assert re.search(reason, message)
        assert "numpy.save" in message and "version 1.0, 2.0 or 3.0" in message  # what is expected
        # none of NumPy's internal wording
        for numpy_words in ("we only support", "EOF:", "descr", "Cannot parse", "Could not read"):
            assert numpy_words not in message


NETCDF_FORMATS = ("NETCDF4", "NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET", "NETCDF3_64BIT_DATA")


def _netcdf(tmp_path, *, with_grid: bool, format: str = "NETCDF4") -> bytes:
    path = tmp_path / f"field_{format}.nc"
    with netCDF4.Dataset(path, "w", format=format) as ds:
        ds.createDimension("time", 2)
        ds.createDimension("lat", 3)
        ds.createDimension("lon", 4)
        lat = ds.createVariable("lat", "f4", ("lat",))
        lat[:] = [10, 20, 30]
        if with_grid:
            t = ds.createVariable("t2m", "f4", ("time", "lat", "lon"), fill_value=-999.0)
            t.units = "K"
            t.long_name = "2 m temperature"
            t[:] = np.arange(24, dtype=np.float32).reshape(2, 3, 4) + 270
            t[0, 0, 0] = np.ma.masked
            sst = ds.createVariable("sst", "f8", ("lat", "lon"))
            sst[:] = np.arange(12, dtype=float).reshape(3, 4) / 7  # not exact in float32
    return path.read_bytes()


@pytest.mark.parametrize("format", NETCDF_FORMATS)
def test_netcdf_lists_grids_and_reads_first_slice(tmp_path, format):
    data = _netcdf(tmp_path, with_grid=True, format=format)
    names = samples.netcdf_variables(data)
    assert list(names) == ["t2m", "sst"]
    assert "2 m temperature" in names["t2m"] and "[K]" in names["t2m"]
    grid = samples.read_netcdf_upload(data, "t2m")
    expected = np.arange(12, dtype=float).reshape(3, 4) + 270
    expected[0, 0] = expected.ravel()[1:].mean()  # the masked cell is filled with the mean
    np.testing.assert_array_equal(grid, expected)
    np.testing.assert_array_equal(
        samples.read_netcdf_upload(data, "sst"), np.arange(12, dtype=float).reshape(3, 4) / 7
    )
    with pytest.raises(ValueError, match="not a 2-D grid"):
        samples.read_netcdf_upload(data, "lat")


@pytest.mark.parametrize("format", NETCDF_FORMATS)
def test_truncated_netcdf_says_it_is_damaged(tmp_path, format):
    data = _netcdf(tmp_path, with_grid=True, format=format)
    signature = 8 if format == "NETCDF4" else 4  # HDF5's 8-byte signature, or "CDF" + version
    # Every cut of the small classic files (about 500 bytes); every 13th byte of the HDF5 one.
    cuts = [*range(signature, len(data), 1 if format != "NETCDF4" else 13), len(data) - 1]
    header_read = 0
    for cut in cuts:
        damaged = data[:cut]
        try:  # does netCDF-C itself still read the header (and so list the grids)?
            with netCDF4.Dataset("cut.nc", memory=damaged) as ds:
                listed = {"t2m", "sst"} <= set(ds.variables)
        except (OSError, RuntimeError, ValueError):
            listed = False
        header_read += listed
        for read in (samples.netcdf_variables, samples.read_netcdf_upload):
            # only ValueError may come out: anything else would be a traceback on the page
            with pytest.raises(ValueError) as err:
                read(damaged)
            message = str(err.value)
            assert "damaged or truncated" in message, (cut, message)
            assert "no numeric variable" not in message, (cut, message)
            if listed:  # the header is intact: the message names the variable cut short
                assert re.search(r"variable '(lat|t2m|sst)' could not be read \(", message)
    if format != "NETCDF4":  # HDF5 notices a short file when opening; classic files later
        assert header_read >= 4 * 24 + 8 * 12  # at least every cut inside t2m's and sst's data


def test_netcdf_with_a_damaged_data_block(tmp_path):
    # Fletcher-32 checksums let HDF5 notice one flipped byte inside the variable's data.
    path = tmp_path / "flipped.nc"
    values = np.arange(12, dtype=np.float32).reshape(3, 4) + 0.5
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", None)  # unlimited and left empty
        ds.createDimension("lat", 3)
        ds.createDimension("lon", 4)
        sst = ds.createVariable("sst", "f4", ("lat", "lon"), fletcher32=True, chunksizes=(3, 4))
        sst[:] = values
        ds.createVariable("empty", "f4", ("time", "lat", "lon"))  # no slice to read: not listed
    data = bytearray(path.read_bytes())
    assert list(samples.netcdf_variables(bytes(data))) == ["sst"]
    np.testing.assert_array_equal(samples.read_netcdf_upload(bytes(data)), values)
    start = bytes(data).find(values.tobytes())
    assert start > 0
    data[start + 5] ^= 0xFF
    for read in (samples.netcdf_variables, samples.read_netcdf_upload):
        with pytest.raises(ValueError, match="damaged or truncated: variable 'sst' could not be"):
            read(bytes(data))


def test_netcdf_values_beyond_float32_are_refused(tmp_path):
    path = tmp_path / "huge.nc"
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.createDimension("lat", 3)
        ds.createDimension("lon", 4)
        ds.createVariable("energy", "f8", ("lat", "lon"))[:] = np.full((3, 4), 1e300)
    with pytest.raises(ValueError, match=r"'energy' holds 12 value\(s\) beyond ±3\.4e38"):
        samples.read_netcdf_upload(path.read_bytes(), "energy")


def test_netcdf_without_a_grid_and_corrupt(tmp_path):
    data = _netcdf(tmp_path, with_grid=False)
    with pytest.raises(ValueError, match="no numeric variable with two or more dimensions"):
        samples.netcdf_variables(data)
    with pytest.raises(ValueError, match="no numeric variable"):
        samples.read_netcdf_upload(data)
    with pytest.raises(ValueError, match="could not be read as NetCDF.*damaged or truncated"):
        samples.read_netcdf_upload(b"CDF\x01" + b"\x00" * 20)
    with pytest.raises(ValueError, match=r"could not be read as NetCDF \(") as err:
        samples.read_netcdf_upload(_png(np.zeros((4, 4), np.uint8)))  # a PNG named .nc
    assert "damaged" not in str(err.value)


def test_netcdf_grid_too_large_is_refused(tmp_path, monkeypatch):
    data = _netcdf(tmp_path, with_grid=True)
    monkeypatch.setattr(samples, "MAX_UPLOAD_PIXELS", 11)
    with pytest.raises(ValueError, match="3×4 = 12 cells; at most 11"):
        samples.read_netcdf_upload(data, "sst")


def test_limit_size_and_grayscale():
    image = np.random.default_rng(0).random((600, 300, 3))
    small = samples.limit_size(image, 200)
    assert small.shape == (200, 100, 3)
    assert samples.limit_size(image[:50, :50], 200).shape == (50, 50, 3)
    gray = samples.to_grayscale(np.ones((4, 4, 3)))
    np.testing.assert_allclose(gray, 1.0)


def _npy(arr: np.ndarray, **kwargs) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, **kwargs)
    return buf.getvalue()


def test_table_upload_reads_npy_and_csv_with_or_without_header():
    table = np.arange(12.0).reshape(4, 3)
    np.testing.assert_array_equal(samples.read_table_upload(_npy(table), "f.npy"), table)
    rows = b"\n".join(b"%d,%d,%d" % tuple(r) for r in table.astype(int))
    np.testing.assert_array_equal(samples.read_table_upload(rows, "f.csv"), table)
    np.testing.assert_array_equal(samples.read_table_upload(b"a,b,c\n" + rows, "f.csv"), table)
    column = samples.read_table_upload(_npy(np.arange(5.0)), "labels.npy")
    assert column.shape == (5, 1)


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"", "f.csv", "empty"),
        (b"1,2\n3,nan\n", "f.csv", "NaN"),
        (b"x,y\nfoo,bar\n", "f.csv", "as numbers"),
        (b"not a numpy file", "f.npy", "lacks the NumPy header"),
        (_npy(np.array([{"a": 1}], dtype=object), allow_pickle=True), "f.npy", "unpickling"),
        (_npy(np.arange(12.0))[:60], "f.npy", "not a valid .npy"),
        (_npy(np.zeros((2, 2, 2))), "f.npy", "2-D table"),
    ],
)
def test_table_upload_errors_say_what_is_wrong(data, name, message):
    with pytest.raises(ValueError, match=message):
        samples.read_table_upload(data, name)


def test_table_upload_size_limit():
    with pytest.raises(ValueError, match="at most 1 MiB"):
        samples.read_table_upload(b"1\n" * 2**20, "f.csv", max_bytes=2**20)


@pytest.mark.parametrize(
    ("data", "name"),
    [(b"1;2;3\n4;5;6\n", "semicolons"), (b"1;2\n", "semicolons"), (b"x\ty\n1\t2\n", "tabs")],
)
def test_a_table_separated_otherwise_than_by_commas_is_named(data, name):
    with pytest.raises(ValueError, match=f"separates its columns with {name}: a CSV needs commas"):
        samples.read_table_upload(data, "f.csv")


def test_a_comma_table_with_semicolons_in_its_header_is_read():
    arr = samples.read_table_upload(b"a;b,c\n1,2\n3,4\n", "f.csv")
    np.testing.assert_array_equal(arr, [[1, 2], [3, 4]])


def test_sample_crops_come_in_rounds_of_every_photo():
    from vizlib.data import load_sample_image, sample_crops, sample_image_names

    names = sample_image_names()
    crops = sample_crops(3, seed=1)
    assert len(crops) == 3 * len(names)
    # the first round: every photo's centred largest square, in the photos' order
    for (label, crop), name in zip(crops[: len(names)], names, strict=True):
        photo = load_sample_image(name)
        h, w = photo.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        assert label == f"{name}, crop 1 of 3"
        assert np.array_equal(crop, photo[top : top + side, left : left + side])
    for label, crop in crops[len(names) :]:
        name = label.split(",")[0]
        short = min(load_sample_image(name).shape[:2])
        assert crop.shape[0] == crop.shape[1]
        assert 0.3 * short - 1 <= crop.shape[0] <= 0.8 * short + 1
        assert crop.min() >= 0 and crop.max() <= 1
    assert [c.shape for _, c in sample_crops(3, seed=1)] == [c.shape for _, c in crops]
    assert [c.shape for _, c in sample_crops(3, seed=2)] != [c.shape for _, c in crops]
    with pytest.raises(ValueError, match="per_photo"):
        sample_crops(0)
    with pytest.raises(ValueError, match="smallest"):
        sample_crops(2, smallest=0.9, largest=0.5)
