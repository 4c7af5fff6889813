"""Where the 120 Stanford Dogs classes sit among the 1,000 ImageNet-1k classes.

ImageNet-1k's classes are numbered in ascending WordNet-id order, and its dogs occupy the block
151 (Chihuahua) .. 268 (Mexican hairless), followed by wolves and wild dogs up to 275. Stanford
Dogs was built from ImageNet: it takes 117 of those 118 domestic breeds (all but the dalmatian,
n02110341, ImageNet index 251) and three wild canids, dingo (273), dhole (274) and African
hunting dog (275). So the table is "sort the wnids, count up from 151, skip 251": written out
below as a constant (so a reader can check a breed by eye) and checked against the data by
`tests/dogs/test_imagenet.py`, which also takes the majority ImageNet prediction per breed on
the *train* split and requires it to agree with this table.
"""

from __future__ import annotations

__all__ = [
    "DALMATIAN_INDEX",
    "DOG_INDEX_RANGE",
    "IMAGENET_INDEX",
    "WILD_CANIDS",
    "dog_class_indices",
    "imagenet_index",
]

#: ImageNet-1k indices of every domestic dog and wild dog class (151..275 inclusive): wolves,
#: coyote, dingo, dhole and African hunting dog count as "a dog" for not-a-dog detection too,
#: because a photo of a wolf-like dog regularly lands there.
DOG_INDEX_RANGE: tuple[int, int] = (151, 275)

#: The one ImageNet dog that Stanford Dogs does not include.
DALMATIAN_INDEX = 251

#: The three Stanford Dogs classes that are wild canids and sit after the wolves.
WILD_CANIDS: dict[str, int] = {"n02115641": 273, "n02115913": 274, "n02116738": 275}

#: Stanford Dogs wnid -> ImageNet-1k class index (0-based, as in torchvision / timm).
IMAGENET_INDEX: dict[str, int] = {
    "n02085620": 151,  # Chihuahua
    "n02085782": 152,  # Japanese spaniel
    "n02085936": 153,  # Maltese dog
    "n02086079": 154,  # Pekinese
    "n02086240": 155,  # Shih-Tzu
    "n02086646": 156,  # Blenheim spaniel
    "n02086910": 157,  # papillon
    "n02087046": 158,  # toy terrier
    "n02087394": 159,  # Rhodesian ridgeback
    "n02088094": 160,  # Afghan hound
    "n02088238": 161,  # basset
    "n02088364": 162,  # beagle
    "n02088466": 163,  # bloodhound
    "n02088632": 164,  # bluetick
    "n02089078": 165,  # black-and-tan coonhound
    "n02089867": 166,  # Walker hound
    "n02089973": 167,  # English foxhound
    "n02090379": 168,  # redbone
    "n02090622": 169,  # borzoi
    "n02090721": 170,  # Irish wolfhound
    "n02091032": 171,  # Italian greyhound
    "n02091134": 172,  # whippet
    "n02091244": 173,  # Ibizan hound
    "n02091467": 174,  # Norwegian elkhound
    "n02091635": 175,  # otterhound
    "n02091831": 176,  # Saluki
    "n02092002": 177,  # Scottish deerhound
    "n02092339": 178,  # Weimaraner
    "n02093256": 179,  # Staffordshire bullterrier
    "n02093428": 180,  # American Staffordshire terrier
    "n02093647": 181,  # Bedlington terrier
    "n02093754": 182,  # Border terrier
    "n02093859": 183,  # Kerry blue terrier
    "n02093991": 184,  # Irish terrier
    "n02094114": 185,  # Norfolk terrier
    "n02094258": 186,  # Norwich terrier
    "n02094433": 187,  # Yorkshire terrier
    "n02095314": 188,  # wire-haired fox terrier
    "n02095570": 189,  # Lakeland terrier
    "n02095889": 190,  # Sealyham terrier
    "n02096051": 191,  # Airedale
    "n02096177": 192,  # cairn
    "n02096294": 193,  # Australian terrier
    "n02096437": 194,  # Dandie Dinmont
    "n02096585": 195,  # Boston bull
    "n02097047": 196,  # miniature schnauzer
    "n02097130": 197,  # giant schnauzer
    "n02097209": 198,  # standard schnauzer
    "n02097298": 199,  # Scotch terrier
    "n02097474": 200,  # Tibetan terrier
    "n02097658": 201,  # silky terrier
    "n02098105": 202,  # soft-coated wheaten terrier
    "n02098286": 203,  # West Highland white terrier
    "n02098413": 204,  # Lhasa
    "n02099267": 205,  # flat-coated retriever
    "n02099429": 206,  # curly-coated retriever
    "n02099601": 207,  # golden retriever
    "n02099712": 208,  # Labrador retriever
    "n02099849": 209,  # Chesapeake Bay retriever
    "n02100236": 210,  # German short-haired pointer
    "n02100583": 211,  # vizsla
    "n02100735": 212,  # English setter
    "n02100877": 213,  # Irish setter
    "n02101006": 214,  # Gordon setter
    "n02101388": 215,  # Brittany spaniel
    "n02101556": 216,  # clumber
    "n02102040": 217,  # English springer
    "n02102177": 218,  # Welsh springer spaniel
    "n02102318": 219,  # cocker spaniel
    "n02102480": 220,  # Sussex spaniel
    "n02102973": 221,  # Irish water spaniel
    "n02104029": 222,  # kuvasz
    "n02104365": 223,  # schipperke
    "n02105056": 224,  # groenendael
    "n02105162": 225,  # malinois
    "n02105251": 226,  # briard
    "n02105412": 227,  # kelpie
    "n02105505": 228,  # komondor
    "n02105641": 229,  # Old English sheepdog
    "n02105855": 230,  # Shetland sheepdog
    "n02106030": 231,  # collie
    "n02106166": 232,  # Border collie
    "n02106382": 233,  # Bouvier des Flandres
    "n02106550": 234,  # Rottweiler
    "n02106662": 235,  # German shepherd
    "n02107142": 236,  # Doberman
    "n02107312": 237,  # miniature pinscher
    "n02107574": 238,  # Greater Swiss Mountain dog
    "n02107683": 239,  # Bernese mountain dog
    "n02107908": 240,  # Appenzeller
    "n02108000": 241,  # EntleBucher
    "n02108089": 242,  # boxer
    "n02108422": 243,  # bull mastiff
    "n02108551": 244,  # Tibetan mastiff
    "n02108915": 245,  # French bulldog
    "n02109047": 246,  # Great Dane
    "n02109525": 247,  # Saint Bernard
    "n02109961": 248,  # Eskimo dog
    "n02110063": 249,  # malamute
    "n02110185": 250,  # Siberian husky
    # 251 is the dalmatian (n02110341), which Stanford Dogs leaves out
    "n02110627": 252,  # affenpinscher
    "n02110806": 253,  # basenji
    "n02110958": 254,  # pug
    "n02111129": 255,  # Leonberg
    "n02111277": 256,  # Newfoundland
    "n02111500": 257,  # Great Pyrenees
    "n02111889": 258,  # Samoyed
    "n02112018": 259,  # Pomeranian
    "n02112137": 260,  # chow
    "n02112350": 261,  # keeshond
    "n02112706": 262,  # Brabancon griffon
    "n02113023": 263,  # Pembroke
    "n02113186": 264,  # Cardigan
    "n02113624": 265,  # toy poodle
    "n02113712": 266,  # miniature poodle
    "n02113799": 267,  # standard poodle
    "n02113978": 268,  # Mexican hairless
    # 269-272: timber wolf, white wolf, red wolf, coyote (not in Stanford Dogs)
    **WILD_CANIDS,
}


def imagenet_index(wnid: str) -> int:
    """ImageNet-1k index of a Stanford Dogs class; KeyError naming the wnid otherwise."""
    try:
        return IMAGENET_INDEX[wnid]
    except KeyError:
        raise KeyError(f"{wnid!r} is not one of the 120 Stanford Dogs classes") from None


def dog_class_indices() -> list[int]:
    """Every ImageNet index counted as 'a dog' (151..275)."""
    low, high = DOG_INDEX_RANGE
    return list(range(low, high + 1))
