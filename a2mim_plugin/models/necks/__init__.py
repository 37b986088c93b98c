from .a2mim_decoder import A2MIMLinearDecoder

__all__ = ['A2MIMLinearDecoder']
