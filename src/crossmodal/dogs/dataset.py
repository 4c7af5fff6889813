"""Turn a breed-labelled dog folder into an image-caption dataset: `crossmodal dogs build-dataset`.

Stanford Dogs has labels, not captions. From each image's breed we write captions grounded in
the knowledge base (breed name, size, coat, usual colours, temperament), in English, Chinese or
both, so `crossmodal eval --dataset captions-json --root OUT` (and training) can use dog data.
Every caption states breed-level facts only: a caption never claims this particular dog's colour,
because the label does not say it ("a breed whose coat is usually fawn, cream or black").

Output, in OUT:
    captions.json   [{"image": <path relative to OUT>, "captions": [...]}, ...]
    train.txt / val.txt / test.txt   the same image paths, one per line

Images are not copied: each entry is the image's path relative to OUT (e.g.
`../stanford_dogs/images/n02085620_10074.jpg`), which the captions-json loader resolves against
the folder of captions.json. The split is `split_stratified(seed=0)` over the labels file in its
row order: for Stanford Dogs' labels.tsv exactly the split `load_dataset("stanford-dogs")` gives,
so the recogniser's held-out test images are the dataset's test images too.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crossmodal.data import LabeledImageDataset, split_stratified
from crossmodal.dogs.knowledge import _SIZE_ZH, BreedInfo, KnowledgeBase
from crossmodal.errors import ConfigError, DatasetError

__all__ = [
    "BuildReport",
    "breed_captions",
    "build_dataset",
    "build_tsinghua_dataset",
    "read_tsinghua",
]

LANG_CHOICES = ("en", "zh", "both")
_GROUP_EN = {
    "toy": "toy breed",
    "hound": "hound",
    "terrier": "terrier",
    "sporting": "gun dog",
    "non-sporting": "companion breed",
    "working": "working dog",
    "herding": "herding dog",
    "wild canid": "wild canid",
}
_SIZE_EN = {
    "toy": "very small",
    "small": "small",
    "medium": "medium-sized",
    "large": "large",
    "giant": "giant",
}
_GROUP_ZH = {
    "toy": "玩赏犬",
    "hound": "猎犬",
    "terrier": "㹴犬",
    "sporting": "枪猎犬",
    "non-sporting": "伴侣犬",
    "working": "工作犬",
    "herding": "牧羊犬",
    "wild canid": "野生犬科动物",
}


@dataclass
class BuildReport:
    out: Path
    images: int
    captions: int
    splits: dict[str, int]
    lang: str
    skipped: dict[str, int] = field(default_factory=dict)  # breeds the base lacks -> images
    missing: int = 0  # listed images with no file

    def summary(self) -> str:
        parts = ", ".join(f"{k} {v}" for k, v in self.splits.items())
        text = (
            f"wrote {self.out / 'captions.json'}: {self.images} images, {self.captions} "
            f"captions ({self.lang}); splits: {parts}"
        )
        if self.skipped:
            names = ", ".join(sorted(self.skipped))
            text += (
                f"; skipped {sum(self.skipped.values())} images of {len(self.skipped)} breeds "
                f"the knowledge base does not hold ({names})"
            )
        if self.missing:
            text += f"; {self.missing} listed images had no file"
        return text


def _rng(image: str, seed: int) -> np.random.Generator:
    # per-image seed from its name: the captions of an image do not change when others do
    digest = int(hashlib.sha1(image.encode("utf-8")).hexdigest()[:8], 16)
    return np.random.default_rng([seed, digest])


def _pick(rng: np.random.Generator, items: list[str], k: int) -> list[str]:
    if len(items) <= k:
        return list(items)
    idx = sorted(rng.choice(len(items), size=k, replace=False).tolist())
    return [items[i] for i in idx]


def _join_en(items: list[str], conj: str = "and") -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {conj} " + items[-1]


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def breed_captions(info: BreedInfo, lang: str, rng: np.random.Generator) -> list[str]:
    """Five captions (fewer fields known -> simpler sentences) about one image of `info`."""
    if lang == "zh":
        return _captions_zh(info, rng)
    return _captions_en(info, rng)


def _care_en(b: BreedInfo, rng: np.random.Generator) -> str:
    """One breed-level care fact (lifespan, coat for the weather, trainability), or ''."""
    facts = []
    if b.lifespan_years:
        low, high = (f"{v:g}" for v in b.lifespan_years)
        facts.append(f"a breed that usually lives {low}-{high} years")
    if b.cold_tolerance == "high":
        facts.append("a breed made for cold weather")
    if b.heat_tolerance == "low":
        facts.append("a breed that feels the heat")
    if b.trainability == "high":
        facts.append("an easily trained breed")
    return facts[int(rng.integers(len(facts)))] if facts else ""


def _care_zh(b: BreedInfo, rng: np.random.Generator) -> str:
    facts = []
    if b.lifespan_years:
        low, high = (f"{v:g}" for v in b.lifespan_years)
        facts.append(f"寿命一般为{low}至{high}年")
    if b.cold_tolerance == "high":
        facts.append("很耐寒")
    if b.heat_tolerance == "low":
        facts.append("怕热")
    if b.trainability == "high":
        facts.append("容易训练")
    return facts[int(rng.integers(len(facts)))] if facts else ""


def _captions_en(b: BreedInfo, rng: np.random.Generator) -> list[str]:
    name = b.name_en
    kind = "wild canid" if b.is_wild else "dog"
    out = [f"a photo of {_article(name)} {name}."]
    care = _care_en(b, rng)
    if b.size:
        group = _GROUP_EN.get(b.group or "", kind)
        size = _SIZE_EN[b.size]
        out.append(
            f"{_article(size)} {size} {group}: {_article(name)} {name}"
            + (f", {care}." if care else ".")
        )
    else:
        out.append(f"{_article(name)} {name} {kind}.")
    if b.coat_en:
        out.append(f"{_article(name)} {name} with its {b.coat_en}.")
    else:
        out.append(f"a {kind} of the {name} breed.")
    if b.colors_en:
        colors = _pick(rng, b.colors_en, 3)
        out.append(
            f"{_article(name)} {name}, a breed whose coat is usually {_join_en(colors, 'or')}."
        )
    else:
        out.append(f"a picture of {_article(name)} {name}.")
    if b.temperament_en:
        a, c = (
            _pick(rng, b.temperament_en, 2)[:2]
            if len(b.temperament_en) >= 2
            else (
                b.temperament_en[0],
                "",
            )
        )
        words = f"{a} and {c}" if c else a
        out.append(f"{_article(words)} {words} {name}.")
    else:
        out.append(f"this {kind} is {_article(name)} {name}.")
    return out


def _captions_zh(b: BreedInfo, rng: np.random.Generator) -> list[str]:
    name = b.name_zh
    kind = "野生犬科动物" if b.is_wild else "狗"
    out = [f"一张{name}的照片。"]
    care = _care_zh(b, rng)
    if b.size:
        group = _GROUP_ZH.get(b.group or "", kind)
        out.append(f"一只{name}，一种{_SIZE_ZH[b.size]}{group}" + (f"，{care}。" if care else "。"))
    else:
        out.append(f"一只{name}。")
    out.append(f"一只{name}，被毛特点：{b.coat_zh}。" if b.coat_zh else f"这只{kind}是{name}。")
    if b.colors_zh:
        colors = _pick(rng, b.colors_zh, 3)
        out.append(f"一只{name}，这个品种的毛色通常为{'、'.join(colors)}。")
    else:
        out.append(f"照片里是一只{name}。")
    if b.temperament_zh:
        words = _pick(rng, b.temperament_zh, 2)
        out.append(f"一只{'又'.join(words) if len(words) == 2 else words[0]}的{name}。")
    else:
        out.append(f"这是{name}。")
    return out


def _read_labels(labels: Path, images: Path) -> list[tuple[str, Path, str, int]]:
    """(image name, path, wnid, line) per row of a labels.tsv (`image<TAB>wnid[<TAB>breed]`)."""
    try:
        text = labels.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"labels file not found: {labels}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read labels file {labels}: {exc}") from None
    rows: list[tuple[str, Path, str, int]] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        cols = [c.strip() for c in line.split("\t")]
        if n == 1 and cols[0].lower() == "image":
            continue
        if len(cols) < 2 or not cols[0] or not cols[1]:
            raise DatasetError(
                f"{labels.name} line {n}: expected 'image<TAB>wnid[<TAB>breed]', got {line[:60]!r}"
            )
        image, wnid = cols[0], cols[1]
        if image in seen:
            raise DatasetError(
                f"{labels.name} line {n}: {image} is listed twice (line {seen[image]})"
            )
        seen[image] = n
        path = images / image
        if not path.is_file():
            raise DatasetError(f"{labels.name} line {n}: no image file {path}")
        rows.append((image, path, wnid, n))
    if not rows:
        raise DatasetError(f"{labels}: lists no images")
    return rows


# ---------------------------------------------------------------------- Tsinghua Dogs
#: a class folder of Tsinghua Dogs: `1043-n000001-Shiba_Dog` (low-resolution: image count
#: first) or `n000001-Shiba_Dog`
_THU_CLASS = re.compile(r"^(?:\d+-)?n\d{6}-(?P<name>.+)$")
_THU_IMAGES = ("low-resolution", "high-resolution")
_THU_LISTS = ("TrainAndValList/train.lst", "TrainAndValList/validation.lst")


@dataclass
class TsinghuaLayout:
    """What `read_tsinghua` found: rows (image, path, wnid, split) and what it left out."""

    rows: list[tuple[str, Path, str, str]]
    skipped: dict[str, int]  # Tsinghua breed name -> images, for breeds the base lacks
    missing: int  # listed images with no file


def _thu_list(path: Path) -> list[str]:
    """Image paths of a Tsinghua list file: `.//<class folder>/<image>.jpg` per line (the
    files start with a byte-order mark and may use backslashes)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(f"Tsinghua Dogs list not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    out = []
    for line in text.splitlines():
        item = line.strip().replace("\\", "/").lstrip("./")
        if item:
            out.append(item)
    return out


def read_tsinghua(root: str | Path, kb: KnowledgeBase | None = None) -> TsinghuaLayout:
    """The images of a Tsinghua Dogs folder (https://cg.cs.tsinghua.edu.cn/ThuDogs/):
    `low-resolution/` (or `high-resolution/`) with one folder per breed, and
    `TrainAndValList/train.lst` / `validation.lst`. Breeds are matched to the knowledge base
    by name (`Siberian_husky` -> Siberian Husky); the 13 or so Tsinghua breeds it does not
    know (e.g. Shiba Dog) are counted in `skipped`, not guessed."""
    root = Path(root)
    kb = kb or KnowledgeBase.load()
    images = next((root / d for d in _THU_IMAGES if (root / d).is_dir()), None)
    if images is None:
        raise DatasetError(
            f"{root}: not a Tsinghua Dogs folder (no {' or '.join(_THU_IMAGES)} folder)"
        )
    rows: list[tuple[str, Path, str, str]] = []
    skipped: dict[str, int] = {}
    missing = 0
    seen: set[str] = set()
    for list_name, split in zip(_THU_LISTS, ("train", "test"), strict=True):
        for item in _thu_list(root / list_name):
            folder, _, name = item.partition("/")
            m = _THU_CLASS.match(folder)
            if not m or not name:
                raise DatasetError(f"{root / list_name}: unexpected entry {item[:80]!r}")
            breed = m.group("name")
            info = kb.find(breed) or kb.find(breed.replace("_dog", "").replace("_Dog", ""))
            if info is None:
                skipped[breed] = skipped.get(breed, 0) + 1
                continue
            path = images / folder / name
            if not path.is_file():
                missing += 1
                continue
            if item in seen:
                continue
            seen.add(item)
            rows.append((item, path, info.wnid, split))
    if not rows:
        raise DatasetError(f"{root}: no listed image of a breed in the knowledge base was found")
    return TsinghuaLayout(rows, skipped, missing)


def build_tsinghua_dataset(
    root: str | Path,
    out: str | Path,
    lang: str = "both",
    seed: int = 0,
    kb: KnowledgeBase | None = None,
) -> BuildReport:
    """captions.json + splits for Tsinghua Dogs: its validation list is our test split, and one
    image in 13 of its train list (by a hash of the name: stable) is our val split."""
    if lang not in LANG_CHOICES:
        raise ConfigError(f"unknown language {lang!r}; use one of {', '.join(LANG_CHOICES)}")
    kb = kb or KnowledgeBase.load()
    layout = read_tsinghua(root, kb)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"cannot create output folder {out}: {exc}") from None
    split_lists: dict[str, list[Path]] = {"train": [], "val": [], "test": []}
    for item, path, _, split in layout.rows:
        if split == "train" and int(hashlib.sha1(item.encode()).hexdigest()[:8], 16) % 13 == 0:
            split = "val"
        split_lists[split].append(path)
    rows = [(item, path, wnid) for item, path, wnid, _ in layout.rows]
    report = _write(rows, split_lists, out, lang, seed, kb)
    report.skipped = dict(layout.skipped)
    report.missing = layout.missing
    return report


def _rel(path: Path, out: Path) -> str:
    """Path of an image relative to OUT (POSIX separators); absolute if there is none."""
    try:
        return Path(os.path.relpath(path.resolve(), out.resolve())).as_posix()
    except ValueError:  # pragma: no cover - different drives on Windows
        return path.resolve().as_posix()


def build_dataset(
    images: str | Path,
    labels: str | Path,
    out: str | Path,
    lang: str = "both",
    seed: int = 0,
    kb: KnowledgeBase | None = None,
) -> BuildReport:
    """Write captions.json + train/val/test.txt for a labelled dog folder (see module doc)."""
    if lang not in LANG_CHOICES:
        raise ConfigError(f"unknown language {lang!r}; use one of {', '.join(LANG_CHOICES)}")
    images, labels, out = Path(images), Path(labels), Path(out)
    if not images.is_dir():
        raise DatasetError(f"image folder not found: {images}")
    kb = kb or KnowledgeBase.load()
    rows = _read_labels(labels, images)
    for image, _, wnid, n in rows:
        if wnid not in kb:
            raise DatasetError(
                f"{labels.name} line {n}: class {wnid} of {image} is not in the breed knowledge "
                "base (it knows the 120 Stanford Dogs classes)"
            )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"cannot create output folder {out}: {exc}") from None

    class_ids = sorted({wnid for _, _, wnid, _ in rows})
    index = {w: i for i, w in enumerate(class_ids)}
    labelled = LabeledImageDataset(
        name="dogs",
        root=images,
        split="all",
        image_paths=[p for _, p, _, _ in rows],
        labels=np.asarray([index[w] for _, _, w, _ in rows], dtype=np.int64),
        class_ids=class_ids,
        class_names=[kb.by_wnid(w).breed for w in class_ids],
    )
    splits = split_stratified(labelled, seed=seed)
    split_lists = {name: list(part.image_paths) for name, part in splits.items()}
    return _write([(i, p, w) for i, p, w, _ in rows], split_lists, out, lang, seed, kb)


def _write(
    rows: list[tuple[str, Path, str]],
    split_lists: dict[str, list[Path]],
    out: Path,
    lang: str,
    seed: int,
    kb: KnowledgeBase,
) -> BuildReport:
    """captions.json (rows in order) and one `<split>.txt` per split (its images in order)."""
    langs = ["en", "zh"] if lang == "both" else [lang]
    entries: list[dict[str, Any]] = []
    rel_of: dict[Path, str] = {}
    n_captions = 0
    for image, path, wnid in rows:
        info = kb.by_wnid(wnid)
        caps: list[str] = []
        for code in langs:
            caps.extend(breed_captions(info, code, _rng(f"{code}:{image}", seed)))
        rel = _rel(path, out)
        entries.append({"image": rel, "captions": caps})
        rel_of[path] = rel
        n_captions += len(caps)
    (out / "captions.json").write_text(
        json.dumps(entries, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    counts: dict[str, int] = {}
    for name, paths in split_lists.items():
        lines = [rel_of[p] for p in paths]
        (out / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        counts[name] = len(lines)
    return BuildReport(out=out, images=len(entries), captions=n_captions, splits=counts, lang=lang)
