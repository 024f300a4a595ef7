from bertsearch.fusion import RRF_K, reciprocal_rank_fusion


def test_documents_ranked_well_by_both_lists_win() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "c", "a"]])
    assert [key for key, _ in fused] == ["b", "a", "c"]
    assert fused[0][1] == 1 / (RRF_K + 2) + 1 / (RRF_K + 1)


def test_keys_in_one_list_only_are_kept_and_ties_keep_first_appearance() -> None:
    fused = reciprocal_rank_fusion([["a", "x"], ["b", "y"]])
    assert [key for key, _ in fused] == ["a", "b", "x", "y"]


def test_empty_input() -> None:
    assert reciprocal_rank_fusion([]) == []
    assert reciprocal_rank_fusion([[], []]) == []
