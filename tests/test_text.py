"""Text cleaning and the teacher's item text."""

from __future__ import annotations

from searchrel.text import clean_text, item_text, tokenize


def test_html_tags_entities_and_style_blocks_are_stripped() -> None:
    assert clean_text("<style>p{color:red}</style><p>Tea &amp; <b>cake</b></p>") == "Tea & cake"


def test_mojibake_is_repaired_inside_otherwise_clean_text() -> None:
    assert clean_text("the sellerâ€™s guide") == "the seller\u2019s guide"
    assert clean_text("CafÃ© crÃ¨me") == "Café crème"


def test_genuine_accents_are_left_alone() -> None:
    for text in ("Café crème", "über", "naïve", "日本の庭"):
        assert clean_text(text) == text


def test_lists_are_joined_and_empty_parts_dropped() -> None:
    assert clean_text(["a", None, "", "b"]) == "a; b"


def test_item_text_keeps_field_order_and_labels_and_skips_empty_fields() -> None:
    item = {
        "title": "Red vase",
        "description": "",
        "caption": "a red vase",
        "board_titles": ["Decor"],
    }
    text = item_text(item, ["title", "description", "caption", "board_titles"])
    assert text == "title: Red vase | image: a red vase | boards: Decor"


def test_item_text_budget_stops_one_field_crowding_out_the_rest() -> None:
    item = {"title": "Vase", "description": "long " * 500, "caption": "a vase on a shelf"}
    text = item_text(item, ["title", "description", "caption"], max_words_per_field=10)
    assert text.endswith("image: a vase on a shelf")


def test_tokenize_is_unicode_aware_and_lowercases() -> None:
    assert tokenize("Gâteau au Chocolat, 2 personnes!") == [
        "gâteau",
        "au",
        "chocolat",
        "2",
        "personnes",
    ]
