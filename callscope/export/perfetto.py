def to_perfetto(events, title=None):
    raise NotImplementedError
