import pytest

from listings import names


@pytest.mark.parametrize(
    "written",
    ["碧云新天地(一期)", "碧云新天地（一期）", "碧云新天地 一期", "碧云新天地一期小区", " 碧云新天地【一期】"],
)
def test_the_same_community_written_differently_has_one_key(written):
    assert names.community_key(written) == "碧云新天地一期"


def test_full_width_latin_and_digits_are_folded():
    assert names.community_key("ＳＯＨＯ现代城２期") == names.community_key("soho现代城2期") == "soho现代城2期"


def test_a_trailing_xiaoqu_is_dropped_but_not_a_whole_name():
    assert names.community_key("和平里小区") == "和平里"
    assert names.community_key("小区") == "小区"


@pytest.mark.parametrize("junk", ["失效", "无效", "  ", "()"])
def test_names_that_name_nothing_have_no_key(junk):
    assert names.community_key(junk) == ""


def test_similarity_scores_a_dropped_character_high_and_another_name_low():
    assert names.similarity("北京城建琨廷南区", "北京城建琨廷南") > 90
    assert names.similarity("远洋山川", "远洋山水") == 75.0
    assert names.similarity("远洋山水", "天通苑中苑") < 30


def test_bigrams_index_short_keys_whole():
    assert names.grams("远洋山水") == {"远洋", "洋山", "山水"}
    assert names.grams("竹园") == {"竹园"}


@pytest.mark.parametrize(
    ("written", "rooms", "halls", "room_type"),
    [
        ("2室1厅", 2, 1, False),
        ("2室1厅1厨1卫", 2, 1, False),
        ("两室一厅", 2, 1, False),
        ("２室１厅", 2, 1, False),
        ("3房间1卫", 3, None, True),
        ("1室0厅", 1, 0, False),
    ],
)
def test_layouts_are_read_whatever_the_writing(written, rooms, halls, room_type):
    assert names.layout(written) == names.Layout(rooms, halls, room_type)


@pytest.mark.parametrize("written", ["车位", "- -室- -厅", "", None])
def test_what_is_not_a_layout_reads_as_none(written):
    assert names.layout(written) is None


def test_room_type_layouts_have_their_own_key():
    assert names.Layout(3, None, True).key == "3房间"
    assert names.Layout(2, 1, False).key == "2室1厅"


@pytest.mark.parametrize("written", ["南北", "北南", "南 北", "朝南北", "北 南"])
def test_aspects_compare_whatever_their_order(written):
    assert names.orientation(written) == names.orientation("南北")


def test_a_diagonal_aspect_is_one_aspect():
    assert names.aspects("南 西南") == ["南", "西南"]
    assert names.orientation("东南") != names.orientation("东 南")
    assert names.orientation("朝") is None


def test_districts_and_unit_numbers_are_compared_by_their_core():
    assert names.district_key("东城区") == names.district_key("东城") == "东城"
    assert names.number_key("3号楼") == names.number_key("3") == "3"
    assert names.number_key("602室") == "602"
