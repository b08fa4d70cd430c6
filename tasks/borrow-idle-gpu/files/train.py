import time

w = 0.0
for epoch in range(30):
    time.sleep(1)  # simulated data loading
    w = w + (1 - w) * 0.2
open("model.txt", "w").write(f"weights={round(w, 6)} epochs=30")
