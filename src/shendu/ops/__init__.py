"""The derivative table: one small class per op (forward and backward side by side) and a
snake_case function for each. ``shendu.OP_REGISTRY`` lists every op class.

Naming rule: an op class is the CamelCase name of its maths plus ``Op`` (``ExpOp``, ``MatMulOp``,
``Conv2DOp``, ``MeanSquaredErrorOp``); its function is snake_case (``exp``, ``matmul``). The suffix keeps
op classes apart from the layers, losses and metrics that share their names (``Add``, ``Dropout``,
``Concatenate``, ``Conv2D``, ``MeanSquaredError``, ``Mean``...), and it is what ``grad_fn`` shows.

Python's builtin names. The public ``sum``, ``max``, ``min``, ``abs`` and ``pow`` (NumPy's names, also
``shendu.sum`` and the Tensor methods) are bound only here, in the package namespace, to functions that the
ops modules define as ``reduce_sum``, ``reduce_max``, ``reduce_min``, ``absolute`` and ``power``. So no ops
module shadows a builtin: inside them ``max(a, b)`` is always Python's (tests/test_op_registry.py checks it).

Keras 3. This package is also ``keras.ops`` for ``import shendu as keras``: its functions take Keras 3's names
and signatures (``add(x1, x2)``, ``reshape(x, newshape)``, ``clip(x, x_min, x_max)``, ``ones(shape)``, ...);
``ops/core.py`` adds the Keras names the table has no op for (``shape``, ``cast``, ``one_hot``, ``argmax``,
``conv``, ``norm``, ``convert_to_tensor``, ...) and ``ops/creation.py`` the creation functions. No submodule
takes a name that ``keras.ops`` uses for a function. Differences from Keras (tests/test_keras_ops.py checks the
rest against Keras itself):

* given only NumPy arrays, an op returns a NumPy array (ops also run on raw arrays inside backward); functions
  without a gradient (``argmax``, ``one_hot``, comparisons, ...) and ``convert_to_tensor`` return Tensors;
* ``gelu`` defaults to the exact form (Keras's ``ops.gelu``: the tanh form; ``keras.activations.gelu``: exact);
* ``arange`` of integers gives int64 (NumPy, PyTorch), Keras int32;
* ``cond``, ``fori_loop``, ``while_loop`` and ``vectorized_map`` run eagerly, as Python loops;
* ``shendu.ops.nn`` and ``shendu.ops.linalg`` are modules of the table, not Keras's ``ops.nn``/``ops.linalg``
  namespaces: use the functions from ``ops`` itself.
"""

from shendu.ops.arithmetic import add, astype, div, mul, neg, power, sub
from shendu.ops.attention import scaled_dot_product_attention
from shendu.ops.convolution import conv1d, conv2d, conv2d_transpose, depthwise_conv2d
from shendu.ops.core import (
    argmax,
    argmin,
    argsort,
    around,
    average_pool,
    binary_crossentropy,
    cast,
    categorical_crossentropy,
    ceil,
    cond,
    conv,
    convert_to_numpy,
    convert_to_tensor,
    divide,
    dot,
    dtype,
    equal,
    flip,
    floor,
    fori_loop,
    greater,
    greater_equal,
    hard_sigmoid,
    hard_silu,
    hard_swish,
    is_tensor,
    isfinite,
    isinf,
    isnan,
    less,
    less_equal,
    log2,
    log10,
    log_sigmoid,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    max_pool,
    moments,
    multiply,
    ndim,
    negative,
    norm,
    normalize,
    not_equal,
    one_hot,
    ravel,
    reciprocal,
    reduce_all,
    reduce_any,
    relu6,
    rsqrt,
    shape,
    size,
    softsign,
    sort,
    sparse_categorical_crossentropy,
    square,
    stop_gradient,
    subtract,
    top_k,
    tril,
    triu,
    true_divide,
    unstack,
    vectorized_map,
    while_loop,
)
from shendu.ops.creation import arange, eye, full, full_like, ones, ones_like, zeros, zeros_like
from shendu.ops.elementwise import (
    absolute,
    clip,
    cos,
    elu,
    erf,
    exp,
    gelu,
    leaky_relu,
    log,
    log1p,
    maximum,
    minimum,
    relu,
    selu,
    sigmoid,
    sign,
    silu,
    sin,
    softplus,
    sqrt,
    swish,
    tanh,
    where,
)
from shendu.ops.linalg import einsum, matmul
from shendu.ops.lookup import embedding_lookup
from shendu.ops.nn import dropout, linear, sigmoid_binary_cross_entropy, softmax_cross_entropy
from shendu.ops.normalization import NormalizeOp  # noqa: F401 - registers the fused normalisation op
from shendu.ops.pool import avg_pool1d, avg_pool2d, max_pool1d, max_pool2d
from shendu.ops.reduce import (
    cumsum,
    log_softmax,
    logsumexp,
    mean,
    prod,
    reduce_max,
    reduce_min,
    reduce_sum,
    softmax,
    std,
    var,
)
from shendu.ops.rnn import gru, lstm, simple_rnn
from shendu.ops.shaping import (
    broadcast_to,
    concatenate,
    expand_dims,
    flatten,
    gather,
    getitem,
    pad,
    permute,
    repeat,
    reshape,
    split,
    squeeze,
    stack,
    sum_to,
    swapaxes,
    take,
    take_along_axis,
    tile,
    transpose,
    unwrap_index,
)

sum, max, min, abs, pow = reduce_sum, reduce_max, reduce_min, absolute, power  # NumPy names (see above)
amax, amin = reduce_max, reduce_min  # Keras's (NumPy's) other names for them
round, all, any = around, reduce_all, reduce_any  # noqa: A001 - Keras's (NumPy's) names, bound only here
clamp = clip  # PyTorch names
unsqueeze = expand_dims
expand = broadcast_to

__all__ = [
    "avg_pool1d", "avg_pool2d", "conv1d", "conv2d", "conv2d_transpose", "depthwise_conv2d", "embedding_lookup",
    "gru", "lstm", "max_pool1d", "max_pool2d", "scaled_dot_product_attention", "simple_rnn",
    "clamp", "expand", "unsqueeze",
    "absolute", "amax", "amin", "arange", "argmax", "argmin", "cast", "conv", "convert_to_numpy", "convert_to_tensor",
    "divide", "eye", "full", "full_like", "is_tensor", "multiply", "negative", "norm", "one_hot", "ones", "ones_like",
    "power", "shape", "square", "stop_gradient", "subtract", "true_divide", "zeros", "zeros_like",
    "einsum",
    "all", "any", "around", "argsort", "average_pool", "binary_crossentropy", "categorical_crossentropy", "ceil",
    "cond", "dot", "dtype", "equal", "flip", "floor", "fori_loop", "greater", "greater_equal", "hard_sigmoid",
    "hard_silu", "hard_swish", "isfinite", "isinf", "isnan", "less", "less_equal", "log10", "log2", "log_sigmoid",
    "logical_and", "logical_not", "logical_or", "logical_xor", "max_pool", "moments", "ndim", "normalize",
    "not_equal", "ravel", "reciprocal", "reduce_all", "reduce_any", "relu6", "round", "rsqrt", "size", "softsign",
    "sort", "sparse_categorical_crossentropy", "top_k", "tril", "triu", "unstack", "vectorized_map", "while_loop",
    "abs", "add", "astype", "broadcast_to", "clip", "concatenate", "cos", "cumsum", "div", "dropout", "elu",
    "erf", "exp", "expand_dims", "flatten", "gather", "gelu", "getitem", "leaky_relu", "linear", "log", "log1p",
    "log_softmax", "logsumexp", "matmul", "max", "maximum", "mean", "min", "minimum", "mul", "neg", "pad",
    "permute", "pow", "prod", "relu", "repeat", "reshape", "selu", "sigmoid", "sigmoid_binary_cross_entropy",
    "sign", "silu", "sin", "softmax", "softmax_cross_entropy", "softplus", "split", "sqrt", "squeeze", "stack",
    "std", "sub", "sum", "sum_to", "swapaxes", "swish", "take", "take_along_axis", "tanh", "tile", "transpose",
    "unwrap_index", "var", "where",
]
