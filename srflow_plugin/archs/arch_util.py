"""What the plugin's networks share outside the flow contract (:mod:`.flow_base`), as BasicSR's ``arch_util``."""

SCALES = (2, 4, 8)  # x2, x4, x8: one, two or three 2x upsampling / squeeze stages

__all__ = ['SCALES', 'check_scale']


def check_scale(network: str, scale: int, option: str = 'scale') -> int:
    """Returns ``scale`` if the network supports it (:data:`SCALES`).

    Raises:
        ValueError: naming the network, the option and the value.
    """
    if scale not in SCALES:
        raise ValueError(f'{network} supports {option} 2, 4 or 8, got {option}={scale}')
    return scale
