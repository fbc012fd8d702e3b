"""Open-Orca/OpenOrca: GPT-4/3.5 augmented FLAN questions with system prompts.

Rule from the report: the teacher translates the *first N* rows of the train split (N = 405,000 in
``paper``), so a preset's ``limit`` takes a prefix, never a sample. An empty system prompt means no
system turn; an empty question or response is quarantined.

Evidence: the dataset card and file tree (https://huggingface.co/datasets/Open-Orca/OpenOrca). The
card's "Data Fields" are ``id`` ("a unique numbered identifier which includes one of 'niv', 't0',
'cot', or 'flan'", the FLAN submix), ``system_prompt``, ``question`` and ``response``, all text; it
counts "~1M GPT-4 completions, and ~3.2M GPT-3.5 completions". The repository root (tree at commit
3e85783; the same two data files at f0823c7 and 21ec496) holds two data files,
``1M-GPT4-Augmented.parquet`` (1.01 GB) and ``3_5M-GPT3_5-Augmented.parquet`` (3.09 GB), beside
``README.md``, ``.gitattributes`` and ``OpenOrcaLogo.png``; commit aaeb685 "removed duplicate ids from
gpt4 data". The card's YAML header declares no ``configs`` (README at 3f94996). Public code reads the
files under these names (``load_dataset("Open-Orca/OpenOrca", data_files="1M-GPT4-Augmented.parquet")``,
or both, GPT-4 first). Agrees with ``SPEC.columns``.

Which rows come first. ``hala.prepare.read_source`` reads a hub id as
``load_dataset("Open-Orca/OpenOrca", name=None, revision="main", split="train[:N]")``, with no
``data_files``, so ``datasets`` (5.2) infers the split from the repository: no file name holds a split
keyword, so the one pattern ``**`` makes every data file the ``train`` split; fsspec's ``glob``
(``AbstractFileSystem.glob``, which the Hub filesystem inherits) returns the matches sorted, so the
split's files are ``1M-GPT4-Augmented.parquet`` then ``3_5M-GPT3_5-Augmented.parquet`` ("1" sorts
before "3"); the logo is dropped (the builder is chosen by the most common extension, parquet, and
the list filtered to it); the parquet builder writes the files in list order; ``[:N]`` slices that
order (both files are downloaded and prepared first). So both files are read, and the first ~1M rows,
the first 405,000 included, are the GPT-4 ones: the hub's file order. A local copy reads the same
order (``local_data_files`` sorts the folder's files by name; it refuses a copied
``OpenOrcaLogo.png`` by name, so leave the logo out). This holds while the card declares no
``configs`` and the files keep their names: ``SPEC.revision`` is ``main`` (not pinned).
"""

from __future__ import annotations

import pyarrow as pa

from hala.sources.base import Normalised, SourceSpec
from hala.sources.columnar import blank, build_messages, prefixed_ids
from hala.sources.schema import STRING


def normalise(table: pa.Table) -> Normalised:
    """System prompt (when present), question and response become a three-turn conversation."""
    n = table.num_rows
    system = table.column("system_prompt")
    messages = build_messages(
        [
            ("system", system, ~blank(system)),
            ("user", table.column("question"), None),
            ("assistant", table.column("response"), None),
        ],
        n,
    )
    out = Normalised(ids=prefixed_ids("openorca", table.column("id")), messages=messages, meta=None)
    out.flag(blank(table.column("id")), "empty_id", "id")
    out.flag(blank(table.column("question")), "empty_text", "question")
    out.flag(blank(table.column("response")), "empty_text", "response")
    return out


SPEC = SourceSpec(
    key="openorca",
    hub_id="Open-Orca/OpenOrca",
    revision="main",
    subset=None,
    split="train",
    role="instruction",
    columns={"id": STRING, "system_prompt": STRING, "question": STRING, "response": STRING},
    normalise=normalise,
    rules="first N rows of train (limit); empty system prompt = no system turn",
)
