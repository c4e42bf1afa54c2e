"""Model pairs the training loop trains: each adapts a teacher/student architecture to one interface.

A pair provides ``teacher_forward`` / ``student_forward`` / ``teacher_loss`` / ``student_loss``, and (as class
methods) its preset configs and network builder; :data:`PAIRS` maps an architecture name to its pair class.
"""

from __future__ import annotations

from typing import Any


# -------------------------------------------------------------------------------------- model pair
class CSAKDPair:
    """Adapter the loop trains: a CSAKD teacher/student pair with the KD joint losses.

    ``norm`` (None or dict of per-band mean/std arrays) is applied to inputs and inverted on outputs,
    so losses and metrics are always on reflectance.
    """

    arch = "csakd"

    def __init__(self, teacher: Any, student: Any, weights: Any, norm: dict[str, Any] | None = None) -> None:
        self.teacher, self.student, self.weights, self.norm = teacher, student, weights, norm

    @staticmethod
    def preset_configs(preset: str, hsi_bands: int, msi_bands: int, scale: int, residual: str, zero_head: bool,
                       csa: str = "corrected", upsample: str = "nearest") -> tuple[Any, Any]:
        """(teacher, student) CSAKD configs of ``preset`` (ValueError on an impossible setting)."""
        from csakd_qgis.nets.csakd import preset_configs

        return preset_configs(preset, hsi_bands, msi_bands, scale, residual=residual, csa=csa, upsample=upsample,
                              zero_head=zero_head)

    @staticmethod
    def build(cfg: Any) -> Any:
        """The CSAKD network of ``cfg`` (teacher and student export as they train)."""
        from csakd_qgis.nets.csakd import build_model

        return build_model(cfg)

    def _run(self, model: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
        lr, msi, base = batch["lr"], batch["msi"], batch.get("base")
        if getattr(model.cfg, "residual", None) != "base":
            base = None  # the base is there for the other network of the pair (e.g. a zoo teacher correcting GLP)
        if self.norm is not None:
            n = self.norm
            lr = (lr - n["hsi_mean"]) / n["hsi_std"]
            msi = (msi - n["msi_mean"]) / n["msi_std"]
            if base is not None:
                base = (base - n["hsi_mean"]) / n["hsi_std"]
        y, f = model(lr, msi, base=base)
        if self.norm is not None:
            y = y * self.norm["hsi_std"] + self.norm["hsi_mean"]
        return y, f

    def teacher_forward(self, batch: dict[str, Any]) -> tuple[Any, Any]:
        """(Y_T, F_T) of the teacher."""
        return self._run(self.teacher, batch)

    def student_forward(self, batch: dict[str, Any]) -> tuple[Any, Any]:
        """(Y_S, F_S) of the student."""
        return self._run(self.student, batch)

    def teacher_loss(self, out_t: tuple[Any, Any], batch: dict[str, Any]) -> tuple[Any, dict[str, float]]:
        """Teacher loss: L1 + SAM + BEBA to the ground truth."""
        from csakd_qgis.nets.losses import teacher_loss

        return teacher_loss(out_t[0].float(), batch["hr"], self.weights)

    def student_loss(self, out_s: tuple[Any, Any], out_t: tuple[Any, Any] | None, batch: dict[str, Any]
                     ) -> tuple[Any, dict[str, float]]:
        """Student loss (KD terms only when teacher outputs are given)."""
        from csakd_qgis.nets.losses import student_loss

        y_t, f_t = (None, None) if out_t is None else (out_t[0].float(), out_t[1].float())
        return student_loss(out_s[0].float(), out_s[1].float(), batch["hr"], y_t, f_t, self.weights)


# ------------------------------------------------------------------------------------------ model pair
class DODNPair:
    """Training adapter of the DODN-style SR pair (same interface as CSAKDPair).

    - ``teacher_forward``: the teacher on the HR-MSI; ``student_forward``: the student on the LR-HSI only.
    - ``teacher_loss``: L1 + w.sam SAM + w.beba BEBA to the ground truth (teacher loss).
    - ``student_loss``: the same reconstruction loss, plus (with a teacher) ``w.response_kd`` * L1(Y_S, Y_T)
      and ``w.feat_kd`` * L1(adapter(F_S), F_T) (feature matching is L1 whatever
      ``w.feat_kd_kind`` says, except "none", which switches it off). Teacher tensors are detached.
    ``norm`` (None or per-band mean/std tensors) maps inputs to the network space and outputs back.
    """

    arch = "dodn"

    def __init__(self, teacher: Any, student: Any, weights: Any, norm: dict[str, Any] | None = None) -> None:
        self.teacher, self.student, self.weights, self.norm = teacher, student, weights, norm

    @staticmethod
    def preset_configs(preset: str, hsi_bands: int, msi_bands: int, scale: int, residual: str, zero_head: bool,
                       **_fusion_only: Any) -> tuple[Any, Any]:
        """(teacher, student) DODN configs of ``preset``; the CSAKD-only options (csa, upsample) are ignored."""
        from csakd_qgis.nets import dodn

        return dodn.preset_configs(preset, hsi_bands, msi_bands, scale, residual=residual, zero_head=zero_head)

    @staticmethod
    def build(cfg: Any) -> Any:
        """The DODN network of ``cfg`` with its training-only KD adapter (the student exports without it)."""
        from csakd_qgis.nets import dodn

        return dodn.build_training_model(cfg)

    def teacher_forward(self, batch: dict[str, Any]) -> tuple[Any, Any]:
        """(Y_T, F_T) of the teacher (HR-MSI in)."""
        msi = batch["msi"]
        if self.norm is not None:
            msi = (msi - self.norm["msi_mean"]) / self.norm["msi_std"]
        y, f = self.teacher(msi)
        if self.norm is not None:
            y = y * self.norm["hsi_std"] + self.norm["hsi_mean"]
        return y, f

    def student_forward(self, batch: dict[str, Any]) -> tuple[Any, Any]:
        """(Y_S, adapted F_S) of the student (LR-HSI in)."""
        lr = batch["lr"]
        if self.norm is not None:
            lr = (lr - self.norm["hsi_mean"]) / self.norm["hsi_std"]
        y, f = self.student(lr)
        if self.norm is not None:
            y = y * self.norm["hsi_std"] + self.norm["hsi_mean"]
        return y, f

    def teacher_loss(self, out_t: tuple[Any, Any], batch: dict[str, Any]) -> tuple[Any, dict[str, float]]:
        """Teacher reconstruction loss."""
        from csakd_qgis.nets.losses import teacher_loss

        return teacher_loss(out_t[0].float(), batch["hr"], self.weights)

    def student_loss(self, out_s: tuple[Any, Any], out_t: tuple[Any, Any] | None, batch: dict[str, Any]
                     ) -> tuple[Any, dict[str, float]]:
        """Student loss: reconstruction (+ response and feature KD when teacher outputs are given)."""
        from csakd_qgis.nets.losses import l1, reconstruction_loss

        w = self.weights
        y_s = out_s[0].float()
        total, parts = reconstruction_loss(y_s, batch["hr"], w)
        if out_t is not None:
            if w.response_kd:
                r = l1(y_s, out_t[0].float().detach())
                total = total + w.response_kd * r
                parts["response_kd"] = float(r.detach())
            if w.feat_kd and w.feat_kd_kind != "none":
                fk = l1(out_s[1].float(), out_t[1].float().detach())
                total = total + w.feat_kd * fk
                parts["feat_kd"] = float(fk.detach())
        parts["total"] = float(total.detach())
        return total, parts


PAIRS: dict[str, type] = {"csakd": CSAKDPair, "dodn": DODNPair}
