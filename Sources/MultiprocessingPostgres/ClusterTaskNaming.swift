import Multiprocessing

/// Gives a task type a name of your choosing on the queue, instead of its module-qualified type
/// name.
///
/// A producer and a worker are often different executables; they agree on a task type by its
/// name. By default that is `String(reflecting: F.self)` (`"MyTasks.Square"`), which stays the
/// same as long as the type keeps its module and name. Conform to keep a name across a rename:
///
/// ```swift
/// extension Square: ClusterTaskNaming {
///     static var clusterTaskName: String { "square.v1" }
/// }
/// ```
public protocol ClusterTaskNaming {
    /// The name this type has on the queue.
    static var clusterTaskName: String { get }
}

/// The name a function type has on the queue.
public func clusterTaskName<F: ProcessFunction>(of type: F.Type) -> String {
    if let named = type as? any ClusterTaskNaming.Type { return named.clusterTaskName }
    return String(reflecting: type)
}
