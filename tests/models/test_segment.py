"""Chinese word segmentation: longest match over a lexicon, jieba for the rest."""

from mmattn.models.segment import is_cjk, jieba_words, lexicon_words
from mmattn.scenes import ZH_WORDS


def test_longest_match_prefers_the_longer_known_word():
    lexicon = {"圆", "圆形", "正方形", "方", "的"}
    assert lexicon_words("圆形的正方形", lexicon) == ["圆形", "的", "正方形"]


def test_the_world_caption_splits_into_its_words():
    assert lexicon_words("红色的圆形在蓝色正方形的左边", ZH_WORDS) == ["红色", "的", "圆形", "在", "蓝色", "正方形", "的", "左边"]
    assert lexicon_words("一个大的十字形", ZH_WORDS) == ["一个", "大", "的", "十字形"]


def test_runs_no_known_word_covers_go_to_jieba():
    # 方块 and 草地 are no words of the shapes world; jieba knows them
    assert lexicon_words("蓝色方块", ZH_WORDS) == ["蓝色", "方块"]
    assert lexicon_words("草地上的红色", ZH_WORDS) == [*jieba_words("草地上"), "的", "红色"]
    assert "".join(lexicon_words("一只猫在草地上睡觉", ZH_WORDS)) == "一只猫在草地上睡觉"  # nothing lost or added


def test_jieba_words_and_cjk():
    assert jieba_words("蓝色的天空") == ["蓝色", "的", "天空"]
    assert jieba_words("") == []
    assert is_cjk("红色") and not is_cjk("red") and not is_cjk("红a") and not is_cjk("")
