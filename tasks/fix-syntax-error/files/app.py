def count(items)
    return len(items)


print(f'ok: {count([1, 2, 3])} items')
