"""Fixtures shared by the page tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def downloads(monkeypatch) -> dict[str, bytes]:
    """The bytes of every download button of the runs that follow, by file name."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    seen: dict[str, bytes] = {}
    add = MediaFileManager.add

    def recording_add(self, data, mimetype, coordinates, file_name=None, **kwargs):
        if file_name is not None:
            seen[file_name] = data
        return add(self, data, mimetype, coordinates, file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add", recording_add)
    return seen
