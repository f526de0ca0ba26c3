r"""The ground truth a synthetic session keeps beside its spikes, for the oracles of :mod:`mtm.oracle`.

A synthetic session (:mod:`mtm.data.synthetic`) stores everything that generated its rates:

==================  ===============  ============================================================
field               shape            meaning
==================  ===============  ============================================================
latents             (K, T, L) f32    the latent state :math:`x(t)` of every region, scaled as the
                                     read-out sees it (L = regions x dimensions per region)
inputs              (K, T, U) f32    the task inputs :math:`u(t)` driving the latents
private             (K, J, N) f32    each neuron's private coefficients :math:`s_n c_{knj}`
private_basis       (T, J) f32       the bumps :math:`b_j(t)`: private log-rate
                                     :math:`= \sum_j b_j(t)\, s_n c_{knj}`
readout             (L, N) f32       :math:`g_n w_n` on the dimensions of the neuron's region, 0
                                     elsewhere
log_base            (N,) f32         :math:`\log(\Delta\rho_n) - g_n^2\|w_n\|^2/2 - s_n^2/2`
private_gain        (N,) f32         :math:`s_n`, the standard deviation of the private log-rate
latent_regions      (L,) str         the region of each latent dimension
transition          (L, L) f64       :math:`A` (with the coupling), acting on unscaled latents
input_weights       (L, U) f64       :math:`B`
latent_scale        (L,) f64         latents are the unscaled state divided by this
noise               float            :math:`\sigma`, the latent innovation standard deviation
burn_in             int              steps run from 0 with the first bin's input before bin 0
max_rate            float            the rate clip, in expected counts per bin
==================  ===============  ============================================================

so that ``rates = min(max_rate, exp(latents @ readout + private_basis @ private + log_base))``
(:meth:`GroundTruth.rates`). Real recordings have none (``Session.truth is None``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

PER_TRIAL = ("latents", "inputs", "private")
ARRAYS = PER_TRIAL + ("private_basis", "readout", "log_base", "private_gain", "latent_regions", "transition",
                      "input_weights", "latent_scale")
SCALARS = ("noise", "burn_in", "max_rate")


@dataclass(frozen=True)
class GroundTruth:
    """What generated a synthetic session's rates (module docstring); validated on construction."""

    latents: np.ndarray
    inputs: np.ndarray
    private: np.ndarray
    private_basis: np.ndarray
    readout: np.ndarray
    log_base: np.ndarray
    private_gain: np.ndarray
    latent_regions: np.ndarray
    transition: np.ndarray
    input_weights: np.ndarray
    latent_scale: np.ndarray
    noise: float
    burn_in: int
    max_rate: float

    def __post_init__(self):
        dtypes = {"transition": np.float64, "input_weights": np.float64, "latent_scale": np.float64}
        for name in ARRAYS:
            value = np.asarray(getattr(self, name))
            if name == "latent_regions":
                value = value.astype(str)
            else:
                value = value.astype(dtypes.get(name, np.float32))
                if not np.isfinite(value).all():
                    raise ValueError(f"truth.{name}: expected finite values")
            value = np.array(value)
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        for name, kind in (("noise", float), ("burn_in", int), ("max_rate", float)):
            value = getattr(self, name)
            if isinstance(value, np.ndarray):
                value = value.item()
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueError(f"truth.{name}: expected a number, got {value!r}")
            object.__setattr__(self, name, kind(value))
        k, t, n_latent = self._shape("latents", 3)
        n_inputs = self._shape("inputs", 3, (k, t, None))[2]
        n_basis, n_neurons = self._shape("private", 3, (k, None, None))[1:]
        self._shape("private_basis", 2, (t, n_basis))
        self._shape("readout", 2, (n_latent, n_neurons))
        for name in ("log_base", "private_gain"):
            self._shape(name, 1, (n_neurons,))
        for name in ("latent_regions", "latent_scale"):
            self._shape(name, 1, (n_latent,))
        self._shape("transition", 2, (n_latent, n_latent))
        self._shape("input_weights", 2, (n_latent, n_inputs))
        if (self.private_gain < 0).any() or self.noise < 0 or self.burn_in < 0 or self.max_rate <= 0 \
                or (self.latent_scale <= 0).any():
            raise ValueError("truth: private_gain, noise and burn_in must be >= 0, max_rate and latent_scale > 0")

    def _shape(self, name: str, ndim: int, expected: tuple | None = None) -> tuple:
        shape = getattr(self, name).shape
        if len(shape) != ndim or (expected and any(e is not None and e != s for e, s in zip(expected, shape))):
            want = "x".join("?" if e is None else str(e) for e in expected) if expected else f"{ndim}-d"
            raise ValueError(f"truth.{name}: expected shape {want}, got {shape}")
        return shape

    @property
    def n_trials(self) -> int:
        return self.latents.shape[0]

    @property
    def n_neurons(self) -> int:
        return self.readout.shape[1]

    def rates(self) -> np.ndarray:
        """(K, T, N) float32 expected counts per bin, recomputed from the generative parameters."""
        log_rate = self.latents @ self.readout + np.matmul(self.private_basis, self.private) + self.log_base
        return np.minimum(np.exp(log_rate), np.float32(self.max_rate)).astype(np.float32)

    def check_fits(self, n_trials: int, n_bins: int, n_neurons: int) -> None:
        """Raise ``ValueError`` unless this ground truth belongs to a (K, T, N) session."""
        if (self.n_trials, self.latents.shape[1], self.n_neurons) != (n_trials, n_bins, n_neurons):
            raise ValueError(f"truth: holds {self.n_trials} trials x {self.latents.shape[1]} bins x "
                             f"{self.n_neurons} neurons, the session {n_trials} x {n_bins} x {n_neurons}")

    def select_trials(self, trials: np.ndarray) -> GroundTruth:
        """The same ground truth for a subset of trials (indices)."""
        return GroundTruth(**{f.name: getattr(self, f.name)[trials] if f.name in PER_TRIAL
                              else getattr(self, f.name) for f in fields(self)})

    def to_arrays(self, prefix: str = "truth/") -> dict[str, np.ndarray]:
        """Plain arrays (no pickle) for ``numpy.savez``, keys prefixed with ``prefix``."""
        return {prefix + f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_arrays(cls, arrays: dict, prefix: str = "truth/") -> GroundTruth | None:
        """Rebuild from :meth:`to_arrays`' output; ``None`` when no key has the prefix."""
        found = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
        if not found:
            return None
        missing = [name for name in ARRAYS + SCALARS if name not in found]
        if missing:
            raise ValueError(f"truth: missing {missing}")
        unknown = sorted(set(found) - set(ARRAYS + SCALARS))
        if unknown:
            raise ValueError(f"truth: unknown fields {unknown}")
        return cls(**found)

    def __eq__(self, other) -> bool:
        if not isinstance(other, GroundTruth):
            return NotImplemented
        return all(np.array_equal(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))

    __hash__ = None
