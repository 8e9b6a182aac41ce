__version__ = "0.1.0"

import warnings
# fastai's layers call `torch.jit.script` when imported, which recent torch marks deprecated: without this, every
# command would start with a warning about code that is not ours
warnings.filterwarnings('ignore', message=r'`torch\.jit\.script` is deprecated', category=FutureWarning)
