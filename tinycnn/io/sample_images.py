"""The photos, paintings and textures the figures are drawn on.

The repository ships the ones anyone may republish (CC0 and public domain, listed with
their licences in images/README.md) in ``images/photos``, ``images/styles`` and
``images/textures``; every default figure uses only these. ``make images`` fetches a
few more, with other (permissive) terms, from pinned upstream addresses into the same
folders, each checked against its sha256 before it is kept.

    make images      # python -m tinycnn.io.sample_images: the optional photos -> images/photos/
"""
from pathlib import Path

from .weights import DownloadError, check_file, download, fetch_command

PROJECT_IMAGES = Path(__file__).resolve().parents[2] / "images"

# (file, upstream address, sha256, licence). The addresses name a release tag or commit,
# so that the bytes (and the hashes) cannot change under them; Debian's opencv-doc
# 4.6.0 and darknet 0.0.0+git20180914.61c9d02e packages ship the same bytes.
OPENCV = "https://raw.githubusercontent.com/opencv/opencv/4.6.0/samples/data/"
DARKNET = "https://raw.githubusercontent.com/pjreddie/darknet/61c9d02ec461e30d55762ec7669d6a1d3c356fb2/data/"
OPENCV_TERMS = "OpenCV's sample data (Debian's opencv-doc: Apache-2.0 / BSD-3)"
DARKNET_TERMS = "darknet's sample data (Debian's darknet: GPL-3+ or MIT or WTFPL)"
OPTIONAL = [
    (
        "apple.jpg",
        OPENCV,
        "e86879de3d9a807dedc742a8f464f39e6b74bbb531a1fba3583155d94997d1cd",
        OPENCV_TERMS,
    ),
    (
        "baboon.jpg",
        OPENCV,
        "1a1dd18d78eec44420af3b0b7f08ee3d41c982916cae3ce203d7ff35d754cc0f",
        OPENCV_TERMS,
    ),
    (
        "building.jpg",
        OPENCV,
        "742a1baad62ac82e91e718e77eedf7e85c2eddc4badfb8c87c6cbc86c45a8b07",
        OPENCV_TERMS,
    ),
    (
        "butterfly.jpg",
        OPENCV,
        "34a99716b78ded10eae87b4880de739d3e68cc7dd1a96812bb28f469d5eeaea8",
        OPENCV_TERMS,
    ),
    (
        "fruits.jpg",
        OPENCV,
        "9c031d80a1c52da5eca790db896baffec6a7e52bf786cdb7bbfca5c7f880e6a1",
        OPENCV_TERMS,
    ),
    (
        "HappyFish.jpg",
        OPENCV,
        "ade5b67347d7f89b1539c93843f3f7178782a7e34eb1fe586f4a785c3e60a432",
        OPENCV_TERMS,
    ),
    (
        "home.jpg",
        OPENCV,
        "23b8cf46a1965d0ec33459b875aed43187802834db49e0daa9fa2cc842e9d8d2",
        OPENCV_TERMS,
    ),
    (
        "orange.jpg",
        OPENCV,
        "152c20d2f380ac985de25e474e1a5f06ed34b932191342099b8272a63a15a079",
        OPENCV_TERMS,
    ),
    (
        "squirrel_cls.jpg",
        OPENCV,
        "20bb6e8ae96918a36c9886b6d48e54eedeb3948591e1485c206bc1dc60c8dc8b",
        OPENCV_TERMS,
    ),
    (
        "dog.jpg",
        DARKNET,
        "5a9522051c3cec2bbd2f6323fccba32e8fbf3ddcc2b3e2fd46b04c720bc6f866",
        DARKNET_TERMS,
    ),
    (
        "eagle.jpg",
        DARKNET,
        "f95f57297fd51a6c5ddceb5ed6916fa759d1d65f402fee34c05b31a9608755c0",
        DARKNET_TERMS,
    ),
    (
        "giraffe.jpg",
        DARKNET,
        "00dc48a9b2af8a1fe4c4b79319726591f1033c7e1150f21e7577a79f3b6659f1",
        DARKNET_TERMS,
    ),
    (
        "horses.jpg",
        DARKNET,
        "c8f0a677a1356569e2ce71d2fa88c1030c0ae57ecf5e14170e02d9a86a20dcb4",
        DARKNET_TERMS,
    ),
    (
        "kite.jpg",
        DARKNET,
        "87410f52f79cc256c3949b48a3548632c07c8e9943468ef8caa6250f6643be8e",
        DARKNET_TERMS,
    ),
]
OPTIONAL_NAMES = {name for name, *_ in OPTIONAL}


def fetch_images(out=PROJECT_IMAGES, url=None, *, log=print):
    """Each optional photo into ``out``/photos, from its pinned address (or from the folder
    address ``url``, a mirror holding them by name), its sha256 checked; a file already
    there is kept if its hash matches and refused (DownloadError) if not. The folder."""
    folder = Path(out) / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    for name, upstream, sha256, _ in OPTIONAL:
        path = folder / name
        if path.is_file():
            check_file(path, f"sha256:{sha256}")
            log(f"{name}: already there")
            continue
        download(
            (url.rstrip("/") + "/" if url else upstream) + name,
            path,
            checksum=f"sha256:{sha256}",
            log=log,
        )
    return folder


def main(argv=None):
    fetch_command(
        argv,
        target="images",
        module="sample_images",
        url=None,
        out=PROJECT_IMAGES,
        fetch=fetch_images,
        description="Download the optional sample photos, checking each one's sha256 (make images).",
        out_help="whose photos/ the files go into",
        url_help="a folder address holding the files by name, instead of their pinned upstream addresses",
    )


if __name__ == "__main__":
    main()
