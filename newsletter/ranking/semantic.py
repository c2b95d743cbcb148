"""Meaning, not just words: paper and keyword vectors from a small static embedding model.

The model is WordLlama's 256-dimension token table (its wheel carries the weights, so nothing is
downloaded): a text's vector is the mean of its tokens' vectors, L2-normalised. We read the
package's files ourselves instead of importing it: one gather-and-sum per text, tokens cached per
word, so an issue's abstracts are quick to embed and a send imports no extra framework.
"""

from __future__ import annotations

import importlib.util
import json
import mmap
import os
import struct
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import ConfigError

MODEL_PACKAGE = "wordllama"
_WEIGHTS = "weights/l2_supercat_256.safetensors"
_TOKENIZER = "tokenizers/l2_supercat_tokenizer_config.json"
INSTALL_HINT = "install it with: pip install 'wordllama>=0.4,<0.5'"
WORD_CACHE_SIZE = 200_000  # distinct words whose token ids are kept; bounded against hostile text
MAX_TEXT_CHARS = 8_000
MAPPED_FROM_TEXTS = 8  # a batch this big (an issue's papers) reads the mapped table, then unmaps it
MIN_COSINE = 0.15  # below this cosine no text is related, however the window's papers compare


class EmbeddingModel:
    """A static embedding table and its tokenizer: text in, unit vector out."""

    def __init__(
        self,
        table: np.ndarray,
        tokenizer: object,
        mapped: mmap.mmap | None = None,
        file: TableFile | None = None,
    ) -> None:
        self.table = table  # float16 as shipped (half the memory of float32), summed in float32
        self.dim = int(table.shape[1])
        self._tokenizer = tokenizer
        self._words: dict[str, list[int]] = {}
        self._mapped = mapped  # the file mapping `table` reads from, when memory-mapped
        self._file = file  # the same rows, read with pread: a keyword's few rows map no page at all

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit-length float32 row per text; a text without tokens gets a zero row."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        few = self._file is not None and len(texts) < MAPPED_FROM_TEXTS
        for row, text in enumerate(texts):
            ids = self.token_ids(text)
            if ids:
                rows = self._file.rows(ids) if few and self._file is not None else self.table[ids]
                out[row] = rows.sum(axis=0, dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        if not few:
            self._let_go()
        return out

    def _let_go(self) -> None:
        """Unmap the table's pages this call touched: they stay in the page cache, not in our RSS.

        An issue's abstracts touch nearly every page of the table, and a touched page of a mapped
        file counts in the memory of every process that touched it (the sender and each builder)
        until it is unmapped; the next call maps what it needs again from the cache (minor faults).
        """
        if self._mapped is not None and hasattr(mmap, "MADV_DONTNEED"):
            self._mapped.madvise(mmap.MADV_DONTNEED)

    def token_ids(self, text: str) -> list[int]:
        """The tokenizer's ids for the text, worked out once per distinct word.

        The tokenizer turns every space into '▁' and no token spans a '▁' boundary, so a text's
        tokens are its words' tokens in order (runs of whitespace count as one space).
        """
        words = text[:MAX_TEXT_CHARS].split()
        missing = list({w for w in words if w not in self._words})
        if missing:
            if len(self._words) + len(missing) > WORD_CACHE_SIZE:
                self._words.clear()
            encoded = self._tokenizer.encode_batch(missing, add_special_tokens=False)  # type: ignore[attr-defined]
            self._words.update(zip(missing, (e.ids for e in encoded), strict=True))
        ids: list[int] = []
        for word in words:
            ids.extend(self._words[word])
        return ids


class TableFile:
    """The table's rows read with pread: for a keyword's few tokens, cheaper than mapping and
    unmapping pages (a builder embeds hundreds of keywords), and nothing stays in memory."""

    def __init__(self, path: Path, offset: int, dim: int) -> None:
        self._fd = os.open(
            path, os.O_RDONLY
        )  # kept for the process's life, shared by builders (pread: no seek)
        self._offset = offset
        self._row = 2 * dim  # float16
        self._dim = dim

    def rows(self, ids: Sequence[int]) -> np.ndarray:
        data = b"".join(os.pread(self._fd, self._row, self._offset + i * self._row) for i in ids)
        return np.frombuffer(data, dtype="<f2").reshape(len(ids), self._dim)


def model_files() -> Path | None:
    """Where the installed model package keeps its files, found without importing it."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@lru_cache(maxsize=1)
def load_model() -> EmbeddingModel:
    """Load the table and tokenizer once per process, not per use; builders inherit it by fork."""
    root = model_files()
    if root is None or not (root / _WEIGHTS).is_file():
        raise ConfigError(
            f"semantic ranking needs the {MODEL_PACKAGE} package, which is not installed",
            where="[selection] semantic_weight",
            fix=f"{INSTALL_HINT}, or set semantic_weight = 0 for keyword matching only",
        )
    # Forked builders tokenize too: a tokenizer thread pool must not exist before the fork.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from tokenizers import Tokenizer

    table, mapped, offset = _mapped_table(root / _WEIGHTS)
    tokenizer = Tokenizer.from_file(str(root / _TOKENIZER))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return EmbeddingModel(table, tokenizer, mapped, TableFile(root / _WEIGHTS, offset, int(table.shape[1])))


def _mapped_table(path: Path) -> tuple[np.ndarray, mmap.mmap, int]:
    """The safetensors file's one float16 matrix, memory-mapped: no copy, pages shared by builders.

    Layout: 8-byte little-endian header size, a JSON header naming dtype, shape and the data's
    byte offsets, then the data. Reading it whole (safetensors.load_file) held a private copy in
    every process.
    """
    with path.open("rb") as handle:
        size = struct.unpack("<Q", handle.read(8))[0]
        header = json.loads(handle.read(size))
    entry = next(value for key, value in header.items() if key != "__metadata__")
    if entry.get("dtype") != "F16" or len(entry.get("shape", ())) != 2:
        raise ConfigError(
            f"unexpected model weights ({entry.get('dtype')}, shape {entry.get('shape')})",
            where=str(path),
            fix=f"reinstall a supported version: {INSTALL_HINT}",
        )
    start, _ = entry["data_offsets"]
    rows, dim = entry["shape"]
    with path.open("rb") as handle:
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    table = np.frombuffer(mapped, dtype="<f2", count=rows * dim, offset=8 + size + start)
    return table.reshape(rows, dim), mapped, 8 + size + start


def paper_text(title: str, abstract: str) -> str:
    """What a paper's vector is made of: its title and abstract, as a reader sees them."""
    return f"{title}. {abstract}"


def similarity_scores(similarities: np.ndarray) -> np.ndarray:
    """Cosine similarities as 0..1 relevance: 0 up to one deviation above the window's mean.

    Only papers clearly closer than usual count, and the closest counts 1, so the scale matches
    the lexical score's (best paper = 1) and a keyword nothing in the window is about stays
    near zero for all but a few papers.
    """
    if similarities.size == 0:
        return similarities.astype(np.float32)
    floor = max(float(similarities.mean() + similarities.std()), MIN_COSINE)
    top = float(similarities.max())
    if top - floor <= 1e-6:
        return np.zeros(similarities.shape, dtype=np.float32)
    scaled = (similarities - floor) / (top - floor)
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)
