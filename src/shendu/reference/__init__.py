"""Loop-level textbook versions of convolution, pooling and the recurrent cells: the form a learner reads first.

Each function loops over output pixels and does the arithmetic of the definition, with NumPy only for the
small per-pixel products. They are slow and exist to be read and to check the fast ops
(:mod:`shendu.ops.convolution`, :mod:`shendu.ops.pool`) against; the tests assert that both agree.
Layouts are the fast ops': x (N, H, W, C), kernels (KH, KW, C/groups, O).
"""

from shendu.reference.conv import conv2d, conv2d_backward, conv2d_transpose
from shendu.reference.pool import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward
from shendu.reference.rnn import gru, lstm, simple_rnn

__all__ = ["avg_pool2d", "avg_pool2d_backward", "conv2d", "conv2d_backward", "conv2d_transpose", "gru", "lstm",
           "max_pool2d", "max_pool2d_backward", "simple_rnn"]
