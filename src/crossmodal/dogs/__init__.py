"""The dog edition: breed recognition, a bilingual breed knowledge base, question answering.

    from crossmodal.dogs import identify, answer, KnowledgeBase
    identify("rex.jpg").breeds[0].breed        # 'golden_retriever'
    answer("柯基适合家养吗？").text               # answered in Chinese, facts named
    answer("Is it good with kids?", image="rex.jpg")

Names are imported lazily (PEP 562) so `import crossmodal.dogs` — which the CLI does at start-up
— loads neither torch nor the towers.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crossmodal.dogs.dataset import BuildReport, build_dataset
    from crossmodal.dogs.imagenet import IMAGENET_INDEX
    from crossmodal.dogs.knowledge import BreedInfo, KnowledgeBase
    from crossmodal.dogs.qa import Answer, DogQuestionError, Fact, answer
    from crossmodal.dogs.recognize import (
        BreedRecognizer,
        BreedScore,
        Identification,
        identify,
        identify_many,
    )

_EXPORTS: dict[str, str] = {
    "identify": "crossmodal.dogs.recognize",
    "identify_many": "crossmodal.dogs.recognize",
    "Identification": "crossmodal.dogs.recognize",
    "BreedScore": "crossmodal.dogs.recognize",
    "BreedRecognizer": "crossmodal.dogs.recognize",
    "answer": "crossmodal.dogs.qa",
    "Answer": "crossmodal.dogs.qa",
    "Fact": "crossmodal.dogs.qa",
    "DogQuestionError": "crossmodal.dogs.qa",
    "KnowledgeBase": "crossmodal.dogs.knowledge",
    "BreedInfo": "crossmodal.dogs.knowledge",
    "IMAGENET_INDEX": "crossmodal.dogs.imagenet",
    "build_dataset": "crossmodal.dogs.dataset",
    "BuildReport": "crossmodal.dogs.dataset",
}

__all__ = [
    "IMAGENET_INDEX",
    "Answer",
    "BreedInfo",
    "BreedRecognizer",
    "BreedScore",
    "BuildReport",
    "DogQuestionError",
    "Fact",
    "Identification",
    "KnowledgeBase",
    "answer",
    "build_dataset",
    "identify",
    "identify_many",
]
assert sorted(__all__) == sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'crossmodal.dogs' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
