from mathutil import sum_all

print(f'total={sum_all([10, 20, 30])}')
