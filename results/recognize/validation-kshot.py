"""Accuracy of each way to combine k examples per label, from validation-kshot.sh's CSVs."""
import csv, glob, math, os, sys, collections
import statistics
tot=collections.Counter(); n=0
for f in sorted(glob.glob(os.path.join(sys.argv[1], '*', 'out.csv'))):
    rows=list(csv.reader(open(f)))
    h=rows[0]; nl=(len(h)-5)//2
    for r in rows[1:]:
        truth=r[0].split('/')[-2]
        s={}
        for k in range(nl):
            lab=r[5+2*k]; sc=float(r[6+2*k]); ch,dr=lab.split('~'); s[(ch,int(dr))]=sc
        chars=sorted({c for c,_ in s})
        def acc(fn, name):
            scores=[fn(c) for c in chars]; best=chars[max(range(len(scores)),key=lambda i:(scores[i],-i))]
            tot[name]+= best==truth
        for d in range(1,6): acc(lambda c:s[(c,d)], f'1-shot d{d}')
        for k in (2,3,5):
            acc(lambda c:statistics.fmean([s[(c,d)] for d in range(1,k+1)]), f'{k}-shot mean logit')
            acc(lambda c:max(s[(c,d)] for d in range(1,k+1)), f'{k}-shot max logit')
            acc(lambda c:statistics.fmean([1/(1+math.exp(-s[(c,d)])) for d in range(1,k+1)]), f'{k}-shot mean prob')
            acc(lambda c:math.log(statistics.fmean([math.exp(x) for x in [s[(c,d)] for d in range(1,k+1)]])), f'{k}-shot logmeanexp')
        n+=1
print(f'{n} queries')
for k,v in sorted(tot.items()): print(f'{k:24s} {v:5d} {100*v/n:.2f}%')
