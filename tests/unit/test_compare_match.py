"""Matching on small hand-worked similarity matrices."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neuroscribe.compare import best_partners, decoder_cosine, one_to_one, universality

NAN = float("nan")


def test_best_partners_take_each_rows_argmax_and_skip_nan():
    r = np.array([[0.1, 0.9, 0.2], [NAN, 0.3, 0.6], [NAN, NAN, NAN]])
    p = best_partners(r)
    assert p.index.tolist() == [1, 2, -1]
    assert p.r[:2].tolist() == [0.9, 0.6] and math.isnan(p.r[2])


def test_one_to_one_gives_up_a_greedy_best_for_the_best_total():
    # Greedy would pair a0-b0 (0.9) and leave a1 with b1 (0.1): total 1.0.
    # The optimum pairs a0-b1 (0.8) and a1-b0 (0.85): total 1.65.
    r = np.array([[0.9, 0.8], [0.85, 0.1]])
    m = one_to_one(r)
    assert m.as_dict() == {0: 1, 1: 0}
    assert m.r.tolist() == [0.8, 0.85]
    # while best_partners sends both to b0
    assert best_partners(r).index.tolist() == [0, 0]


def test_one_to_one_on_rectangles_and_nan():
    r = np.array([[0.2, 0.7, 0.1, 0.0], [0.6, NAN, 0.5, 0.1]])
    assert one_to_one(r).as_dict() == {0: 1, 1: 0}
    # a row that is all NaN is left unmatched, not paired through a NaN
    r2 = np.array([[0.5, 0.1], [NAN, NAN]])
    assert one_to_one(r2).as_dict() == {0: 0}


def test_one_to_one_recovers_a_permutation():
    perm = np.random.default_rng(0).permutation(20)
    r = np.full((20, 20), 0.05)
    r[np.arange(20), perm] = 0.9
    assert one_to_one(r).as_dict() == dict(enumerate(perm.tolist()))


def test_universality_is_the_share_of_rows_with_a_partner_above_the_threshold():
    r = np.array([[0.9, 0.1], [0.4, 0.5], [0.2, 0.3], [NAN, NAN]])
    assert universality(r) == pytest.approx(2 / 3)  # the NaN row is not counted
    assert universality(r, threshold=0.95) == 0.0
    assert math.isnan(universality(np.full((2, 2), NAN)))


def test_decoder_cosine_by_hand():
    w_a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    w_b = np.array([[2.0, 0.0], [0.0, -3.0]])
    cos = decoder_cosine(w_a, w_b)
    s = 1 / math.sqrt(2)
    np.testing.assert_allclose(cos[:2], [[1.0, 0.0], [s, -s]], atol=1e-12)
    assert np.isnan(cos[2]).all()  # a dead (zero) decoder row has no direction
    with pytest.raises(ValueError, match="d_in"):
        decoder_cosine(w_a, np.ones((2, 3)))
