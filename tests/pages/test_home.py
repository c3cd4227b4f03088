"""The router and its default page, Home, run as the app runs them: through app.py."""

import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

from vizlib import zoo

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def test_home_lists_pages_and_shipped_models():
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert at.title[0].value == "CNN & ViT Visualiser"
    table = at.table[0].value
    assert list(table.index) == zoo.checkpoint_names()
    for name, acc in zip(table.index, table["test accuracy (%)"], strict=True):
        assert abs(acc - 100 * zoo.checkpoint_metadata(name)["test_accuracy"]) < 1e-9
    assert at.sidebar.selectbox(key="app.device").value == "cpu" or at.sidebar.selectbox(
        key="app.device"
    ).value.startswith("cuda")


def test_the_models_table_says_how_each_checkpoint_was_trained_and_tested():
    """The table is a static one that wraps to the page (the interactive grid hid its last two
    columns past the edge of a 1024-pixel projector); its training column is the metadata's."""
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception and not at.dataframe
    table = at.table[0].value
    lenet = zoo.checkpoint_metadata("lenet_digits")
    assert table.loc["lenet_digits", "test images"] == lenet["test_samples"] == 450
    assert table.loc["lenet_digits", "dataset"] == "digits"
    seconds = round(lenet["training_time_s"])
    assert seconds < 120 and table.loc["lenet_digits", "training"] == (
        f"{lenet['epochs']} epochs, {seconds} s on {lenet['device']}"
    )
    vit = zoo.checkpoint_metadata("vit_digits")
    minutes = round(vit["training_time_s"] / 60)  # 1,368 s: said in minutes
    assert minutes > 2 and table.loc["vit_digits", "training"] == (
        f"{vit['epochs']} epochs, {minutes} min on {vit['device']}"
    )


def test_device_picker_choice_reaches_the_pages():
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.sidebar.selectbox(key="app.device").set_value("cpu").run()
    assert not at.exception
    assert "CPU" in at.markdown[0].value


def test_home_links_to_every_other_page_by_its_sidebar_title():
    root = Path(APP).parent
    titles = dict(
        re.findall(
            r'st\.Page\(\s*"app_pages/(\w+)\.py",\s*title="([^"]+)"', (root / "app.py").read_text()
        )
    )
    pages = {path.stem for path in (root / "app_pages").glob("*.py")} - {"home"}
    assert pages <= set(titles)  # the pattern found every page app.py registers
    at = AppTest.from_file(APP, default_timeout=60).run()
    links = {link.proto.page: link.proto.label for link in at.get("page_link")}
    assert links == {page: titles[page] for page in pages}
    assert all(link.proto.page_script_hash for link in at.get("page_link"))  # a registered page


def test_home_cards_follow_the_sidebar_sections_and_order():
    """The cards were filled into two columns alternately, so the left column read Convolution
    Playground, Filters, Embeddings, Position Embeddings: a ViT page under the CNN ones, and
    Model Inspector out of its place. They now go section by section, row by row."""
    root = Path(APP).parent
    source = (root / "app.py").read_text()
    sections = re.findall(r'^    "([^"]*)": \[', source, flags=re.MULTILINE)
    pages = re.findall(r'st\.Page\(\s*"app_pages/(\w+)\.py"', source)
    at = AppTest.from_file(APP, default_timeout=60).run()
    # element-tree order is reading order: row by row, left column first
    assert [link.proto.page for link in at.get("page_link")] == [p for p in pages if p != "home"]
    shown = [md.value.strip("*") for md in at.markdown]
    named = [s for s in sections if s]  # Home's own section has no name
    assert [s for s in shown if s in named] == named
