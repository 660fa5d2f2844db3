"""Denoising beyond geometry: teacher scorers, LLM judges, a judgement cache, and the step
that applies them to any sampler's draws.

Imported on its own (``from negsample import scoring``): ``import negsample`` never loads
it, and torch / sentence-transformers are imported only when a model scorer is built.

- :class:`Scorer` / :class:`Judge`: the two contracts; :class:`ScoringStats` their counters.
- :class:`CrossEncoderScorer`, :class:`EmbeddingScorer`: local teacher models.
- :class:`LLMJudge`: any OpenAI-compatible chat-completions endpoint, one request per item;
  :class:`ListwiseJudge`: all of a query's candidates in one request;
  :class:`CascadeJudge`: RLHN's two-judge cascade; :class:`JudgementCache`: sqlite cache.
- :func:`denoise`, :func:`mine_denoised`: keep the first ``n`` draws per row that pass
  :class:`Margins` on teacher scores and the judge; teacher scores for distillation;
  :func:`draw_plan`: how many draws a row gets.
"""

from ._http import redact
from .base import LABELS, Judge, JudgeItem, Label, Scorer, ScoringStats, parse_label
from .cache import JudgementCache
from .denoise import denoise
from .listwise import DEFAULT_LISTWISE_PROMPT, ListwiseJudge, ListwisePrompt, parse_labels
from .llm import DEFAULT_PROMPT, CascadeJudge, JudgeError, JudgePrompt, LLMJudge
from .margins import Margins
from .mine import DrawPlan, draw_plan, mine_denoised
from .models import CrossEncoderScorer, EmbeddingScorer
from .results import Denoised, DenoiseStats, TeacherScores

__all__ = [
    "DEFAULT_LISTWISE_PROMPT",
    "DEFAULT_PROMPT",
    "LABELS",
    "CascadeJudge",
    "CrossEncoderScorer",
    "DenoiseStats",
    "Denoised",
    "DrawPlan",
    "EmbeddingScorer",
    "Judge",
    "JudgeError",
    "JudgeItem",
    "JudgePrompt",
    "JudgementCache",
    "LLMJudge",
    "Label",
    "ListwiseJudge",
    "ListwisePrompt",
    "Margins",
    "Scorer",
    "ScoringStats",
    "TeacherScores",
    "denoise",
    "draw_plan",
    "mine_denoised",
    "parse_label",
    "parse_labels",
    "redact",
]
