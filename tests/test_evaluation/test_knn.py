"""The weighted k-NN classifier: known answers, chance, a brute-force reference, chunking."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from a2mim_plugin.evaluation import (accuracies, knn_classify, knn_evaluate, nearest_neighbours,
                                     per_class_subset)


def brute_force_knn(bank, bank_labels, queries, k, temperature, num_classes):
    """Reference: loop over queries, sort all similarities, sum the weights per class.

    Returns the classes by decreasing vote, each row cut after the classes that got a vote
    (the order among classes without votes is arbitrary)."""
    preds = []
    for q in queries.double():
        sims = [(float(q @ b.double()), i) for i, b in enumerate(bank)]
        sims.sort(key=lambda t: -t[0])
        votes = [0.] * num_classes
        for sim, i in sims[:k]:
            votes[int(bank_labels[i])] += math.exp(sim / temperature)
        voted = sum(v > 0 for v in votes)
        preds.append(sorted(range(num_classes), key=lambda c: -votes[c])[:min(5, voted)])
    return preds


def test_one_hot_features_give_100_percent():
    labels = torch.arange(7).repeat(6)  # 42 bank images of 7 classes
    bank = F.one_hot(labels, 7).float()
    queries = F.one_hot(torch.arange(7).repeat(3), 7).float()
    result = knn_evaluate(bank, labels, queries, torch.arange(7).repeat(3), ks=(1, 5, 20))
    assert result.top1 == {1: 100., 5: 100., 20: 100.}
    assert result.top5 == {1: 100., 5: 100., 20: 100.}
    assert result.metrics() == {'knn/top1': 100., 'knn/top5': 100., 'knn/top1_k5': 100.,
                                'knn/top5_k5': 100., 'knn/top1_k20': 100., 'knn/top5_k20': 100.}


def test_label_independent_features_give_chance():
    # 10 balanced classes, 3000 queries: predictions do not depend on the query labels, so the
    # number of top-1 hits is Binomial(3000, 0.1) (sd 0.55 points) and of top-5 hits
    # Binomial(3000, 0.5) (sd 0.91 points); the bound is 4 sd.
    gen = torch.Generator().manual_seed(0)
    bank = F.normalize(torch.randn(2000, 32, generator=gen), dim=1)
    bank_labels = torch.arange(10).repeat(200)
    queries = F.normalize(torch.randn(3000, 32, generator=gen), dim=1)
    query_labels = torch.arange(10).repeat(300)
    result = knn_evaluate(bank, bank_labels, queries, query_labels, ks=(20, ))
    assert abs(result.top1[20] - 10.) < 4 * 0.55
    assert abs(result.top5[20] - 50.) < 4 * 0.91


@pytest.mark.parametrize('bank_dtype', [torch.float32, torch.float16])
def test_chunked_equals_brute_force(bank_dtype):
    gen = torch.Generator().manual_seed(1)
    num_classes = 6
    bank = F.normalize(torch.randn(97, 16, generator=gen), dim=1).to(bank_dtype)
    bank_labels = torch.randint(0, num_classes, (97, ), generator=gen)
    queries = F.normalize(torch.randn(23, 16, generator=gen), dim=1)
    # Chunks that do not divide the sizes: 5 queries x 13 bank rows per block.
    got = knn_classify(bank, bank_labels, queries, ks=(3, 10, 20), temperature=0.07,
                       num_classes=num_classes, query_chunk=5, bank_chunk=13)
    for k in (3, 10, 20):
        want = brute_force_knn(bank.float(), bank_labels, queries, k, 0.07, num_classes)
        assert [row[:len(w)] for row, w in zip(got[k].tolist(), want)] == want, k
        assert min(len(w) for w in want) >= (2 if k == 3 else 4)  # the ranks are tested


def test_running_top_k_matches_a_full_sort():
    gen = torch.Generator().manual_seed(2)
    bank = torch.randn(50, 8, generator=gen)
    queries = torch.randn(4, 8, generator=gen)
    sim, idx = nearest_neighbours(queries, bank, k=7, bank_chunk=6)
    full = queries @ bank.T
    want_sim, want_idx = full.sort(dim=1, descending=True)
    assert torch.equal(idx, want_idx[:, :7])
    assert torch.allclose(sim, want_sim[:, :7])
    # k larger than the bank: every bank row, sorted.
    sim, idx = nearest_neighbours(queries, bank[:3], k=20, bank_chunk=2)
    assert torch.equal(idx, (queries @ bank[:3].T).sort(dim=1, descending=True).indices)


def test_temperature_decides_between_many_far_and_one_near_neighbour():
    # One neighbour of class 0 at similarity 1.0, two of class 1 at 0.9: a low temperature
    # lets the nearest one win, a high one lets the majority win.
    bank = torch.tensor([[1., 0.], [0.9, math.sqrt(1 - 0.81)], [0.9, -math.sqrt(1 - 0.81)]])
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[1., 0.]])
    assert knn_classify(bank, labels, query, ks=(3, ), temperature=0.07)[3][0, 0] == 0
    assert knn_classify(bank, labels, query, ks=(3, ), temperature=10.)[3][0, 0] == 1


def test_top5_and_bad_arguments():
    preds = torch.tensor([[3, 1, 2, 0, 4], [0, 1, 2, 3, 4]])
    assert accuracies(preds, torch.tensor([4, 0])) == (50., 100.)
    with pytest.raises(ValueError, match='ks must be positive'):
        knn_classify(torch.eye(2), torch.arange(2), torch.eye(2), ks=(0, ))
    with pytest.raises(ValueError, match='temperature must be > 0'):
        knn_classify(torch.eye(2), torch.arange(2), torch.eye(2), temperature=0.)
    with pytest.raises(ValueError, match='2 bank features but 3 labels'):
        knn_classify(torch.eye(2), torch.arange(3), torch.eye(2))


def test_per_class_subset_is_seeded_and_capped():
    labels = np.array([0] * 10 + [1] * 3 + [2] * 7)
    a = per_class_subset(labels, 4, seed=0)
    assert a == per_class_subset(labels, 4, seed=0)
    assert a != per_class_subset(labels, 4, seed=1)
    assert a == sorted(a)
    assert np.bincount(labels[a]).tolist() == [4, 3, 4]
    assert per_class_subset(labels, None, seed=0) == list(range(20))
