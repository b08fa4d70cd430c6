import time

total = 0
for n in range(2, 2_000_000):
    time.sleep(0.001)  # 'rate limited' legacy check
    if all(n % d for d in range(2, int(n ** 0.5) + 1)):
        total += n
print(total)
