"""Retrieval metrics on normalised embeddings: report<->study Recall@K and study->study MAP@K.

**Recall@K** (report->study and study->report, as CT-CLIP's `report_to_volume.py`): query i's only correct
item is gallery item i (its own study / report); Recall@K is the share of queries whose correct item ranks in
the top K by cosine similarity. Ties with the correct item count against it (pessimistic).

**MAP@K, CT-CLIP definition** (`CT-CLIP/src/ct_clip/scripts/volume_to_volume.py`; what CT-CLIP, fVLM and
arXiv 2509.13175 report as image->image "MAP@K"): for each query study q,
1. the gallery is every study with at least one positive label (CT-CLIP drops label-free studies from the
   gallery but not from the queries) -- here also without q itself (CT-CLIP keeps q, so its top-1 is q);
2. the K most cosine-similar gallery studies are taken;
3. the query's score is the mean, over those K, of the label overlap `|y_q & y_j| / |y_q | y_j|` (Jaccard of
   the 0/1 label vectors; CT-CLIP's `calc_similarity`);
MAP@K is the mean of the scores over all queries (a query with no positive label scores 0). Despite the name it
is a mean *precision* of label overlap, not an average precision. (CT-CLIP's script also never resets its list
between K values, so its K=5, 10, 50 numbers average over the smaller K's too; not reproduced here.)
With one-hot multiclass labels the overlap is 1 for the same class and 0 otherwise (precision@K).

**Standard mAP** next to it: relevance = the two studies share at least one positive label (multiclass: same
class); per query, `AP@K = (1 / min(K, R)) * sum_{r <= K} precision@r * rel_r` over the gallery of all other
studies, with R the number of relevant ones; queries with R = 0 are skipped. `map` is AP over the full ranking.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def usable_ks(ks: Sequence[int], gallery_size: int) -> list[int]:
    """The K of `ks` below the gallery size (K >= gallery size is trivially 1), always keeping K = 1."""
    return sorted({k for k in ks if k < gallery_size} | ({1} if gallery_size >= 1 else set()))


def recall_at_k(query: np.ndarray, gallery: np.ndarray, ks: Sequence[int]) -> dict[int, float]:
    """Recall@K where query row i matches gallery row i (`[Q, E]` each, normalised)."""
    if query.shape != gallery.shape:
        raise ValueError(f"query {query.shape} and gallery {gallery.shape} must pair row by row")
    similarity = query @ gallery.T  # [Q, Q]
    own = np.diag(similarity)[:, None]
    rank = (similarity >= own).sum(axis=1) - 1  # 0-based rank of the correct item, ties against it
    return {k: float((rank < k).mean()) for k in ks}


def _ranking(embeddings: np.ndarray) -> np.ndarray:
    """`[N, N-1]` gallery indices per query, most similar first, the query itself left out."""
    similarity = embeddings @ embeddings.T
    np.fill_diagonal(similarity, -np.inf)
    order = np.argsort(-similarity, axis=1, kind="stable")
    return order[:, :-1]  # the query itself (-inf) sorts last


def ctclip_map_at_k(
    embeddings: np.ndarray, labels: np.ndarray, ks: Sequence[int], exclude_self: bool = True
) -> dict[int, float]:
    """CT-CLIP's image->image MAP@K (module docstring) of `embeddings [N, E]` with 0/1 `labels [N, C]`."""
    y = np.asarray(labels, bool)
    in_gallery = y.any(axis=1)
    similarity = embeddings @ embeddings.T
    similarity[:, ~in_gallery] = -np.inf
    if exclude_self:
        np.fill_diagonal(similarity, -np.inf)
    order = np.argsort(-similarity, axis=1, kind="stable")
    gallery_sizes = np.isfinite(similarity).sum(axis=1)
    inter = (y[:, None, :] & y[None, :, :]).sum(-1)  # [N, N]
    union = (y[:, None, :] | y[None, :, :]).sum(-1)
    overlap = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    out: dict[int, float] = {}
    for k in ks:
        scores = []
        for q in range(len(y)):
            top = order[q, : min(k, gallery_sizes[q])]
            scores.append(overlap[q, top].mean() if top.size else 0.0)
        out[k] = float(np.mean(scores))
    return out


def mean_average_precision(embeddings: np.ndarray, labels: np.ndarray, ks: Sequence[int] = ()) -> dict[str, float]:
    """Standard mAP (relevance = shared positive label) over the full ranking (`map`) and at each K (`map_at_K`)."""
    y = np.asarray(labels, bool)
    order = _ranking(embeddings)  # [N, N-1]
    relevant = (y[:, None, :] & y[order]).any(-1)  # [N, N-1]
    totals = relevant.sum(axis=1)
    keep = totals > 0
    if not keep.any():
        return {"map": float("nan"), **{f"map_at_{k}": float("nan") for k in ks}}
    hits = np.cumsum(relevant, axis=1)
    precision = hits / np.arange(1, relevant.shape[1] + 1)[None, :]
    gains = precision * relevant
    out = {"map": float((gains.sum(1)[keep] / totals[keep]).mean())}
    for k in ks:
        ap = gains[:, :k].sum(1)[keep] / np.minimum(k, totals[keep])
        out[f"map_at_{k}"] = float(ap.mean())
    return out
