"""Testing helpers: gradient checks."""

from shendu.testing.gradcheck import gradcheck, gradgradcheck

__all__ = ["gradcheck", "gradgradcheck"]
