import os
import stat

import pytest

from naseval.runtime import atomic_directory, write_atomic


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_atomic_outputs_get_the_usual_permissions(tmp_path, umask_022):
    write_atomic(tmp_path / "a.txt", "text")
    write_atomic(tmp_path / "b.png", b"\x89PNG")
    with atomic_directory(tmp_path / "folder") as folder:
        write_atomic(folder / "c.json", "{}")
    modes = {name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in ("a.txt", "b.png", "folder")}
    assert modes == {"a.txt": 0o644, "b.png": 0o644, "folder": 0o755}
    assert (tmp_path / "b.png").read_bytes() == b"\x89PNG" and (tmp_path / "folder" / "c.json").read_text() == "{}"


def test_a_failed_block_leaves_neither_the_folder_nor_its_scratch(tmp_path):
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "out") as folder:
        write_atomic(folder / "half.json", "{")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
