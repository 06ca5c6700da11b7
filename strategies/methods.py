"""The prompt-learning method of a case and its own options, as small named pieces.

Every method PEFT offers on the installed release (`prefixcheck.methods.available()`, so an old
release gets the methods it has) for the drawn task: PEFT refuses some tasks itself (CPTConfig
raises for every task but CAUSAL_LM; `prefixcheck.methods.refusal` reads that from PEFT), and
those are never drawn. A failure PEFT does not refuse up front is the registry's, never a
constraint here.

Half the draws are prefix tuning (the method this suite exists for), half the other methods;
every piece shrinks towards its simplest option. Each options piece returns the sorted
(name, value) pairs `PrefixSpec.options` holds, keyword arguments of the method's config class.
"""

from __future__ import annotations

import os

from hypothesis import strategies as st

from prefixcheck import methods as m

from . import arguments as check

ENCODER_HIDDEN_SIZES = (8, 16, 32)  # P-tuning's and prefix projection's encoder width, when not PEFT's
LSTM_LAYERS = (1, 2)
ENCODER_DROPOUTS = (0.0, 0.1)  # only in train mode: every judged output is in eval mode
PROMPT_INITS = ("RANDOM", "SAMPLE_VOCAB", "TEXT")  # prompt tuning's inits that need no hub download
MULTITASK_INITS = ("RANDOM", "TEXT")  # the source-task inits need a source adapter's state dict
MAX_TASKS = 3
MAX_RANKS = 2
# CPT's token types (cpt_tokens_type_mask): 1 input template, 2 input, 3 output template, 4 output
# (labels). Type-4 prompt tokens are never updated (its backward hook zeroes their gradient).
CPT_UPDATED_TYPES = (1, 2, 3)
CPT_MIN_TOKENS = 2  # one token CPT trains and the output token every prompt ends with (cpt_types)
CPT_LOSS_TYPES = ("none", "decay")
CPT_DECAY_FACTORS = (1.0, 0.95)
CPT_EPSILONS = (0.1, 1.0)
# an init text is words of the tokenizer the suite builds (prefixcheck.engine.tokenizer_folder):
# "t<id>" for every token id from 2 up
TEXT_WORDS = (1, 6)


def drawn_methods() -> tuple[str, ...]:
    """PREFIXCHECK_METHODS: the methods an unpinned draw takes (comma-separated names, or "all").
    Default PREFIX_TUNING only, until the registry holds the failures the other methods meet
    (issue 23: measured on llama CAUSAL_LM, not yet registered); "all" draws every method."""
    raw = os.environ.get("PREFIXCHECK_METHODS", m.PREFIX_TUNING).strip()
    names = m.NAMES if raw == "all" else tuple(x.strip() for x in raw.split(",") if x.strip())
    unknown = [x for x in names if x not in m.NAMES]
    if unknown or not names:
        raise ValueError(f"PREFIXCHECK_METHODS names unknown methods {unknown}; known: all, {', '.join(m.NAMES)}")
    return names


def method_pool(task: str, method: str | None = None) -> tuple[str, ...]:
    """The methods the installed PEFT offers and accepts for `task`, in prefixcheck.methods order
    (prefix tuning first); `method` pins one (any the PEFT offers), else PREFIXCHECK_METHODS's."""
    pool = tuple(x for x in m.available() if m.refusal(x, task) is None)
    return tuple(x for x in pool if x == method) if method else tuple(x for x in pool if x in drawn_methods())


def method_names(task: str, method: str | None = None) -> st.SearchStrategy[str]:
    """A method for `task`: half the draws prefix tuning (shrunk towards), half the others.

    task: one of prefixcheck.case.TASKS.
    method: pins one (it must be offered for `task`); None draws.
    """
    check.choice("method_names", "method", method, m.NAMES)
    if not method_pool(task, method):
        why = m.refusal(method, task) if method in m.available() else f"the installed PEFT has no {method}"
        check.reject("method_names", why or f"{method} is not offered for {task}", method=method, task=task)
    return _method_names(task, method)


def _method_names(task: str, method: str | None = None) -> st.SearchStrategy[str]:
    pool = method_pool(task, method)
    others = [x for x in pool if x != m.PREFIX_TUNING]
    if m.PREFIX_TUNING in pool and others:
        return st.just(m.PREFIX_TUNING) | st.sampled_from(others)
    return st.sampled_from(pool)


def _pairs(**options) -> tuple[tuple[str, object], ...]:
    return tuple(sorted(options.items()))


@st.composite
def p_tuning_options(draw) -> tuple:
    """P-tuning's encoder: MLP (shrunk towards) or a bidirectional LSTM of 1-2 layers; its width
    PEFT's (token_dim, shrunk towards) or one of ENCODER_HIDDEN_SIZES; dropout 0 or 0.1."""
    kind = draw(st.sampled_from(("MLP", "LSTM")))
    options = {"encoder_reparameterization_type": kind, "encoder_dropout": draw(st.sampled_from(ENCODER_DROPOUTS))}
    width = draw(st.none() | st.sampled_from(ENCODER_HIDDEN_SIZES))
    if width is not None:
        options["encoder_hidden_size"] = width
    if kind == "LSTM":  # the MLP ignores encoder_num_layers (and warns)
        options["encoder_num_layers"] = draw(st.sampled_from(LSTM_LAYERS))
    return _pairs(**options)


def init_texts(vocab_size: int) -> st.SearchStrategy[str]:
    """An init text of 1-6 words of the suite's own tokenizer for `vocab_size` ids ("t2 t17")."""
    if not check.is_int(vocab_size) or vocab_size < 3:
        check.reject("init_texts", "vocab_size must be an int >= 3", vocab_size=vocab_size)
    words = st.integers(2, vocab_size - 1).map(lambda i: f"t{i}")
    return st.lists(words, min_size=TEXT_WORDS[0], max_size=TEXT_WORDS[1]).map(" ".join)


@st.composite
def prompt_tuning_options(draw, vocab_size: int, inits: tuple[str, ...] = PROMPT_INITS) -> tuple:
    """Prompt tuning's init: RANDOM (shrunk towards), SAMPLE_VOCAB, or TEXT from an init text of
    the suite's tokenizer (its folder is the engine's to supply, so it is no option here)."""
    init = draw(st.sampled_from(inits))
    options = {"prompt_tuning_init": init}
    if init == "TEXT":
        options["prompt_tuning_init_text"] = draw(init_texts(vocab_size))
    return _pairs(**options)


@st.composite
def multitask_options(draw, vocab_size: int) -> tuple:
    """Multitask prompt tuning: 1..MAX_TASKS tasks (the judged batch's rows take task ids
    row % num_tasks), 1..MAX_RANKS ranks, RANDOM or TEXT init."""
    options = dict(draw(prompt_tuning_options(vocab_size, MULTITASK_INITS)))
    options["num_tasks"] = draw(st.integers(1, MAX_TASKS))
    options["num_ranks"] = draw(st.integers(1, MAX_RANKS))
    return _pairs(**options)


@st.composite
def cpt_options(draw, nvt: int, vocab_size: int) -> tuple:
    """CPT: `nvt` (>= CPT_MIN_TOKENS) prompt token ids of the vocabulary, a mask, token types laid
    out as CPT's documentation describes its in-context examples (`cpt_types`), the loss weighting
    and the projection epsilons."""
    ids = draw(st.lists(st.integers(2, vocab_size - 1), min_size=nvt, max_size=nvt))
    types = draw(cpt_types(nvt))
    loss = draw(st.sampled_from(CPT_LOSS_TYPES))
    return _pairs(
        cpt_token_ids=tuple(ids),
        cpt_mask=tuple(1 for _ in ids),
        cpt_tokens_type_mask=tuple(types),
        opt_weighted_loss_type=loss,
        opt_loss_decay_factor=draw(st.sampled_from(CPT_DECAY_FACTORS)) if loss == "decay" else 1.0,
        opt_projection_epsilon=draw(st.sampled_from(CPT_EPSILONS)),
        opt_projection_format_epsilon=draw(st.sampled_from(CPT_EPSILONS)),
    )


@st.composite
def cpt_types(draw, nvt: int) -> tuple[int, ...]:
    """cpt_tokens_type_mask for `nvt` (>= CPT_MIN_TOKENS) prompt tokens: one to three in-context
    examples of at least CPT_MIN_TOKENS tokens each; the k-th (from 0) has non-decreasing types
    from 4k+1 input template, 4k+2 input, 4k+3 output template, and ends in one 4k+4 output token.
    The last type is a multiple of 4 as CPT needs: CPT marks the caller's tokens as labels only when
    they are numbered on from an output (peft's _cpt_forward gives them 4 + the prompt's largest
    type and keeps labels whose type is a multiple of 4); a prompt ending otherwise leaves no label
    and a NaN loss."""
    examples = draw(st.integers(1, min(3, nvt // CPT_MIN_TOKENS)))
    spare = nvt - CPT_MIN_TOKENS * examples  # the tokens beyond each example's minimum, dealt out
    owners = draw(st.lists(st.integers(0, examples - 1), min_size=spare, max_size=spare))
    types: list[int] = []
    for k in range(examples):
        size = CPT_MIN_TOKENS + owners.count(k)
        body = sorted(draw(st.lists(st.sampled_from(CPT_UPDATED_TYPES), min_size=size - 1, max_size=size - 1)))
        types += [4 * k + t for t in body] + [4 * k + 4]
    return tuple(types)


def cartridge_options(nvt: int) -> st.SearchStrategy[tuple]:
    """Cartridge's frozen leading tokens: 0..nvt-1 (at least one token trains), shrinking to 0."""
    return st.integers(0, nvt - 1).map(lambda frozen: _pairs(num_frozen_tokens=frozen))


def method_options(method: str, nvt: int, vocab_size: int) -> st.SearchStrategy[tuple]:
    """The options of `method` (prefix tuning's own fields are PrefixSpec's: no options).

    method: one of prefixcheck.methods.NAMES.
    nvt: the adapter's num_virtual_tokens (an int >= 1): CPT draws that many token ids,
        Cartridge freezes fewer.
    vocab_size: the base model's vocabulary (an int >= 3), for CPT's ids and init texts.
    """
    check.choice("method_options", "method", method, m.NAMES, optional=False)
    if not check.is_int(nvt) or nvt < 1:
        check.reject("method_options", "nvt must be an int >= 1", nvt=nvt)
    if method == m.CPT and nvt < CPT_MIN_TOKENS:
        check.reject("method_options", f"CPT needs nvt >= {CPT_MIN_TOKENS} (a trained token and an output)", nvt=nvt)
    if not check.is_int(vocab_size) or vocab_size < 3:
        check.reject("method_options", "vocab_size must be an int >= 3", vocab_size=vocab_size)
    return _method_options(method, nvt, vocab_size)


def _method_options(method: str, nvt: int, vocab_size: int) -> st.SearchStrategy[tuple]:
    pieces = {
        m.PREFIX_TUNING: lambda: st.just(()),
        m.P_TUNING: p_tuning_options,
        m.PROMPT_TUNING: lambda: prompt_tuning_options(vocab_size),
        m.MULTITASK_PROMPT_TUNING: lambda: multitask_options(vocab_size),
        m.CPT: lambda: cpt_options(nvt, vocab_size),
        m.CARTRIDGE: lambda: cartridge_options(nvt),
    }
    return pieces[method]()
