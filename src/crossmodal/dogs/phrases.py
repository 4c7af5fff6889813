"""The dog edition's wording, one table per language: what the knowledge base's sentences
(`knowledge.py`) and the question answering (`qa.py`) say in English and in Chinese.

Tables are `{"en": {...}, "zh": {...}}` (or rows with one column per language), so answering
code picks `TABLE[lang]` instead of branching on the language; a third language is a third
entry in each table.
"""

from __future__ import annotations

# ---------------------------------------------------------------------- knowledge sentences
_EXERCISE_EN = {
    "low": "needs little exercise",
    "moderate": "needs moderate exercise",
    "high": "needs a lot of exercise",
}
_GROOM_EN = {
    "low": "is easy to groom",
    "moderate": "needs regular grooming",
    "high": "needs a lot of grooming",
}
_SHED_EN = {"low": "sheds little", "moderate": "sheds moderately", "high": "sheds heavily"}
_SUIT_EN = {
    "apartment": {
        "good": "adapts well to apartment living",
        "ok": "can live in an apartment if it gets enough exercise",
        "poor": "is not well suited to apartment living",
    },
    "children": {
        "good": "is good with children",
        "ok": "can live with children who are taught to handle it gently",
        "poor": "is not a good match for families with young children",
    },
    "first_time_owner": {
        "good": "is a good choice for first-time owners",
        "ok": "can suit a first-time owner who is willing to train it",
        "poor": "is better left to experienced owners",
    },
}

_EXERCISE_ZH = {"low": "运动需求较低", "moderate": "运动需求中等", "high": "运动需求很高"}
_GROOM_ZH = {"low": "被毛打理简单", "moderate": "需要定期梳理被毛", "high": "被毛需要大量打理"}
_SHED_ZH = {"low": "掉毛少", "moderate": "掉毛中等", "high": "掉毛多"}
_SIZE_ZH = {"toy": "超小型", "small": "小型", "medium": "中型", "large": "大型", "giant": "巨型"}
_SUIT_ZH = {
    "apartment": {
        "good": "很适合公寓生活",
        "ok": "运动量充足时也可以住在公寓里",
        "poor": "不太适合公寓生活",
    },
    "children": {
        "good": "与孩子相处融洽",
        "ok": "在孩子懂得温和对待它的前提下可以与孩子相处",
        "poor": "不太适合有年幼孩子的家庭",
    },
    "first_time_owner": {
        "good": "适合新手主人",
        "ok": "愿意花时间训练的新手也可以饲养",
        "poor": "更适合有经验的主人",
    },
}

EXERCISE = {"en": _EXERCISE_EN, "zh": _EXERCISE_ZH}
GROOMING = {"en": _GROOM_EN, "zh": _GROOM_ZH}
SHEDDING = {"en": _SHED_EN, "zh": _SHED_ZH}
SUITABILITY = {"en": _SUIT_EN, "zh": _SUIT_ZH}
#: size classes in words (English uses the class names themselves)
SIZE_NAMES = {"en": {s: s for s in _SIZE_ZH}, "zh": _SIZE_ZH}

# ---------------------------------------------------------------------- answer wording
_FIELD_LABELS: dict[str, tuple[str, str]] = {
    "children": ("children", "与孩子相处"),
    "apartment": ("apartment", "公寓生活"),
    "first_time_owner": ("first-time owner", "新手饲养"),
    "size": ("size", "体型"),
    "weight_kg": ("weight", "体重"),
    "height_cm": ("height", "肩高"),
    "exercise": ("exercise", "运动需求"),
    "grooming": ("grooming", "打理需求"),
    "shedding": ("shedding", "掉毛"),
    "coat": ("coat", "被毛"),
    "colors": ("colours", "毛色"),
    "temperament": ("temperament", "性格"),
    "origin": ("origin", "原产地"),
    "group": ("group", "类别"),
    "description": ("description", "简介"),
    "recognized": ("recognised in the photo, score", "照片识别结果，置信度"),
    "is_dog": ("is a dog", "是狗"),
    "passage": ("passage", "段落"),
    "lifespan_years": ("lifespan", "寿命"),
    "trainability": ("trainability", "训练难易"),
    "barking": ("barking", "吠叫"),
    "health": ("common health problems", "常见健康问题"),
    "heat_tolerance": ("heat tolerance", "耐热"),
    "cold_tolerance": ("cold tolerance", "耐寒"),
    "cats": ("with cats", "与猫相处"),
    "other_dogs": ("with other dogs", "与其他狗相处"),
    "alone": ("time alone", "独处"),
}
_VALUE_ZH = {
    "good": "好",
    "ok": "一般",
    "poor": "差",
    "low": "低",
    "moderate": "中等",
    "high": "高",
    **_SIZE_ZH,
}
_GROUP_ZH = {
    "toy": "玩赏犬",
    "hound": "猎犬",
    "terrier": "㹴犬",
    "sporting": "运动犬",
    "non-sporting": "非运动犬",
    "working": "工作犬",
    "herding": "牧羊犬",
    "wild canid": "野生犬科动物",
}

#: field name -> its label, per language
LABELS: dict[str, dict[str, str]] = {
    "en": {name: pair[0] for name, pair in _FIELD_LABELS.items()},
    "zh": {name: pair[1] for name, pair in _FIELD_LABELS.items()},
}
#: level / suitability / size values in words (English answers say the value itself)
VALUE_WORDS: dict[str, dict[str, str]] = {"zh": _VALUE_ZH}
#: breed groups in words (English answers say the group itself)
GROUP_NAMES: dict[str, dict[str, str]] = {"zh": _GROUP_ZH}

SUIT_PREFIX = {
    "en": {"good": "Yes.", "ok": "It can work.", "poor": "Not really."},
    "zh": {"good": "适合。", "ok": "可以，但有前提。", "poor": "不太适合。"},
}
WHAT_EN = {
    "exercise": "exercise needs",
    "grooming": "grooming needs",
    "first-time owner": "suitability for first-time owners",
    "children": "suitability for children",
    "apartment": "suitability for apartments",
}
NOT_IN_KB = {
    "en": "The {what} of the {name} is not in my knowledge base.",
    "zh": "我的知识库中没有{name}的{what}信息。",
}

_CARE_EN: dict[str, dict[str, str]] = {
    "trainability": {
        "high": "is easy to train: eager to please and quick to learn",
        "moderate": "is moderately easy to train; it learns well with consistent, reward-based "
        "training",
        "low": "is hard to train: independent or stubborn, it needs patience and consistency",
    },
    "barking": {
        "low": "barks little",
        "moderate": "barks moderately, mostly to alert",
        "high": "barks (or howls) a lot",
    },
    "heat_tolerance": {
        "low": "does not tolerate heat well; keep it cool and calm in hot weather",
        "moderate": "tolerates heat moderately; avoid exercise in the midday heat",
        "high": "copes well with heat",
    },
    "cold_tolerance": {
        "low": "feels the cold; it needs a coat or a warm home in winter",
        "moderate": "tolerates cold moderately",
        "high": "copes well with cold weather",
    },
    "cats": {
        "good": "usually gets on well with cats",
        "ok": "can live with cats, best when raised with them and introduced carefully",
        "poor": "is a poor match for a home with cats; it tends to chase them",
    },
    "other_dogs": {
        "good": "usually gets on well with other dogs",
        "ok": "can live with other dogs with good socialisation",
        "poor": "is often not friendly to other dogs, especially of the same sex",
    },
    "alone": {
        "low": "does not like being left alone and is prone to separation distress",
        "moderate": "can be left alone for a few hours once it is used to it",
        "high": "copes well with time alone",
    },
}
_CARE_ZH: dict[str, dict[str, str]] = {
    "trainability": {
        "high": "容易训练，乐于取悦主人、学得快",
        "moderate": "训练难度中等，坚持用奖励为主的方法训练效果较好",
        "low": "不太好训练，比较独立或固执，需要耐心和一致的规则",
    },
    "barking": {"low": "很少吠叫", "moderate": "吠叫中等，多为示警", "high": "比较爱叫（或嚎叫）"},
    "heat_tolerance": {
        "low": "不耐热，炎热天气要注意降温、减少活动",
        "moderate": "耐热程度中等，避免在正午高温时运动",
        "high": "比较耐热",
    },
    "cold_tolerance": {
        "low": "怕冷，冬天需要穿衣服或待在温暖的室内",
        "moderate": "耐寒程度中等",
        "high": "很耐寒",
    },
    "cats": {
        "good": "通常能和猫和睦相处",
        "ok": "可以和猫一起养，最好从小一起长大并谨慎引见",
        "poor": "不太适合有猫的家庭，容易追猫",
    },
    "other_dogs": {
        "good": "通常能和其他狗友好相处",
        "ok": "社会化良好时可以和其他狗一起生活",
        "poor": "对其他狗常不友好，尤其是同性别的狗",
    },
    "alone": {
        "low": "不喜欢独处，容易出现分离焦虑",
        "moderate": "习惯后可以独自在家几个小时",
        "high": "能很好地适应独处",
    },
}
WILD_NOTE = {
    "en": " Note: the {name} is a wild animal, not a pet.",
    "zh": "注意：{name}是野生动物，不是宠物。",
}

CARE = {"en": _CARE_EN, "zh": _CARE_ZH}

NOVICE_CAVEATS = [
    ("trainability", "low", "it can be stubborn to train", "训练需要耐心"),
    ("exercise", "high", "it needs a lot of daily exercise", "每天需要大量运动"),
    (
        "size",
        "giant",
        "its size takes space and strength to handle",
        "体型巨大，需要空间和力气控制",
    ),
    ("alone", "low", "it dislikes being left alone", "不喜欢独处"),
    ("barking", "high", "it barks a lot", "比较爱叫"),
    ("grooming", "high", "its coat needs a lot of grooming", "被毛需要大量打理"),
]
#: what matters with young children
CHILD_CAVEATS = [
    (
        "size",
        "toy",
        "it is small and fragile, so children must handle it gently",
        "体型小而脆弱，孩子需要轻拿轻放",
    ),
    ("size", "giant", "its size can knock over small children", "体型巨大，可能无意中撞倒小孩"),
    ("trainability", "low", "it can be stubborn to train", "训练需要耐心"),
]

KNOWN_TOPICS = [
    ("size", "size", "体型"),
    ("temperament_en", "temperament", "性格"),
    ("exercise", "exercise", "运动需求"),
    ("grooming", "grooming and shedding", "打理和掉毛"),
    ("lifespan_years", "lifespan", "寿命"),
    ("trainability", "training", "训练"),
    ("barking", "barking", "吠叫"),
    ("health", "common health problems", "常见健康问题"),
    ("cold_tolerance", "heat and cold tolerance", "耐热耐寒"),
    ("children", "children", "与孩子相处"),
    ("cats", "cats and other dogs", "与猫和其他狗相处"),
    ("alone", "time alone", "独处"),
    ("origin_en", "origin", "原产地"),
]

#: whole sentences about one breed; {name} is the breed as the sentence's subject
SENTENCES: dict[str, dict[str, str]] = {
    "en": {
        "statement": "{name} {says}.",
        "origin": "{name} comes from {value}.",
        "lifespan": "{name} typically lives {years}.",
    },
    "zh": {
        "statement": "{name}{says}。",
        "origin": "{name}原产于{value}。",
        "lifespan": "{name}的寿命一般为{years}。",
    },
}
