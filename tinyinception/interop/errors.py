"""The one error every weight-file reader raises: the file's path and what is wrong with it."""


class WeightFileError(ValueError):
    """A weight file that cannot be read safely: truncated, wrong magic, unknown dtype, an offset outside the file,
    or a pickle that asks for anything but tensors and plain containers. The message names the file."""

    def __init__(self, path, problem):
        self.path, self.problem = str(path), problem
        super().__init__(f"{path}: {problem}")
