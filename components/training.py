"""Components of the training stages: SFT, merge, registration.

No `from __future__ import annotations` here: KFP reads the real annotation objects.
"""

from kfp import dsl

from hala_components.images import image


@dsl.component(base_image=image("train"), install_kfp_package=False)
def sft_op(
    settings: str, base: dsl.Input[dsl.Model], data: dsl.Input[dsl.Dataset], model: dsl.Output[dsl.Model]
) -> None:
    """Fine-tune the translator or one student size (TRL; DeepSpeed ZeRO over the pod's GPUs).

    Args:
        settings: this stage's settings (JSON: the role, base model, hyperparameters, seed).
        base: the base model.
        data: the bilingual set (translator) or the Arabic corpus (students).
        model: the fine-tuned model, with its data lineage.
    """
    from hala.stages import sft

    outcome = sft.run(sft.SFTSettings.parse(settings), base.path, data.path, model.path)
    model.metadata.update({"global_step": outcome.global_step, "train_loss": outcome.train_loss})


@dsl.component(base_image=image("merge"), install_kfp_package=False)
def merge_op(
    settings: str, finetuned: dsl.Input[dsl.Model], base: dsl.Input[dsl.Model], merged: dsl.Output[dsl.Model]
) -> None:
    """Slerp the fine-tune with its base (MergeKit).

    Args:
        settings: this stage's settings (JSON: the size, the method and t).
        finetuned: the fine-tuned model.
        base: its base model.
        merged: the merged (HALA) model.
    """
    from hala.stages import merge

    merge.run(merge.MergeSettings.parse(settings), finetuned.path, base.path, merged.path)


@dsl.component(base_image=image("data"), install_kfp_package=False)
def register_op(settings: str, model: dsl.Input[dsl.Model], registered: dsl.Output[dsl.Artifact]) -> str:
    """Register the model as a new MLflow model version (alias ``candidate``).

    Args:
        settings: this stage's settings (JSON: the role, the registered name, the base model).
        model: the model to register.
        registered: the registered name and version (read by the report stage).

    Returns:
        The new version.
    """
    from hala.stages import register

    return register.run(register.RegisterSettings.parse(settings), model.path, registered.path).version
