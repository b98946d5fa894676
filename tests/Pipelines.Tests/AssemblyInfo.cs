// Integration and end-to-end tests share two cores, one Docker engine and one Swift; two at once is plenty.
[assembly: CollectionBehavior(MaxParallelThreads = 2)]
