def median(values):
    s = sorted(values)
    n = len(s)
    return s[n // 2]
