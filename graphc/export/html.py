def to_html(*a, **k): raise NotImplementedError
