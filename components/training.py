"""Components of the training stages: corpus assembly, SFT, merge, registration.

No `from __future__ import annotations` here: KFP reads the real annotation objects. Models carry
their lineage (base, revision, data fingerprint) in their artifact metadata from SFT to registration.
"""

from kfp import dsl

from hala_components.images import image

DATA_IMAGE, TRAIN_IMAGE, MERGE_IMAGE = image("data"), image("train"), image("merge")


@dsl.component(base_image=DATA_IMAGE, install_kfp_package=False)
def corpus_first_op(
    source: str, shards: dsl.Input[list[dsl.Dataset]], corpus: dsl.Output[dsl.Dataset]
) -> None:
    """Start the Arabic corpus with one source's translated shards."""
    from hala.training.stages import collect_corpus

    corpus.metadata.update(collect_corpus(source, [s.path for s in shards], None, corpus.path))


@dsl.component(base_image=DATA_IMAGE, install_kfp_package=False)
def corpus_append_op(
    source: str,
    shards: dsl.Input[list[dsl.Dataset]],
    previous: dsl.Input[dsl.Dataset],
    corpus: dsl.Output[dsl.Dataset],
) -> None:
    """Add one more source's translated shards to the Arabic corpus."""
    from hala.training.stages import collect_corpus

    corpus.metadata.update(collect_corpus(source, [s.path for s in shards], previous.path, corpus.path))


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def sft_op(
    preset_json: str,
    kfp_run_id: str,
    work_root: str,
    role: str,
    image_ref: str,
    base: dsl.Input[dsl.Model],
    data: dsl.Input[dsl.Dataset],
    model: dsl.Output[dsl.Model],
) -> None:
    """Fine-tune the translator or one student size (TRL; DeepSpeed ZeRO over the pod's GPUs)."""
    from hala.training import stages

    model.metadata.update(
        stages.sft(preset_json, kfp_run_id, work_root, role, base.path, data.path, model.path, image_ref)
    )


@dsl.component(base_image=MERGE_IMAGE, install_kfp_package=False)
def merge_op(
    preset_json: str,
    kfp_run_id: str,
    role: str,
    finetuned: dsl.Input[dsl.Model],
    base: dsl.Input[dsl.Model],
    merged: dsl.Output[dsl.Model],
) -> None:
    """Slerp the fine-tune with its base (MergeKit)."""
    from hala.training import stages

    stages.merge(preset_json, kfp_run_id, role, finetuned.path, base.path, merged.path)
    merged.metadata.update({**finetuned.metadata, "merged": True})


@dsl.component(base_image=DATA_IMAGE, install_kfp_package=False)
def register_op(preset_json: str, kfp_run_id: str, role: str, model: dsl.Input[dsl.Model]) -> str:
    """Register the model as a new MLflow model version (alias ``candidate``); outputs the version."""
    from hala.training import stages

    return stages.register(preset_json, kfp_run_id, role, model.path, dict(model.metadata))["version"]
